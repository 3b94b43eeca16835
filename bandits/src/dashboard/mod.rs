//! The merchandiser dashboard: server-rendered HTML with inline CSS, inline SVG charts and a small inline
//! script (nothing loaded from elsewhere).
//!
//! - `GET /dashboard`: the slots, each linking to its page.
//! - `GET /dashboard/{slot}?days=7&bucket_hours=6&segment=All&policy=greedy`: for one segment, the current
//!   winner and how sure we are, each arm's numbers (see [`crate::report`] for their definitions), traffic
//!   share over time, CTR with 95 % intervals, what another policy would have earned on the same traffic
//!   (off-policy estimates, [`OPE_BOOTSTRAP`] resamples with seed [`OPE_SEED`], as
//!   `GET /v1/bandits/{slot}/ope?bootstrap=500` computes them), the actions, and the audit trail.
//!
//! Behind the edge the pages need a console session (`/console/login`); the buttons ([`actions`]) call the
//! JSON API (`POST /v1/slots/{slot}/actions`) with the session's CSRF token, so a change made here is
//! validated and audited (under the key's name) exactly like an API call. Modules: `assets` (CSS and the
//! buttons' script), `svg` (charts), [`actions`] (the actions section). Numbers shown
//! rounded carry their raw value in `data-value`; the cells tests read carry a `data-testid`. An unknown
//! slot is a 404 page, a bad query value a 400 page naming the parameter.

mod assets;
mod svg;

use std::collections::BTreeMap;
use std::fmt::Write as _;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use pipelines::access::Principal;
use pipelines::http::auth::Csrf;

use crate::context::SEGMENTS;
use crate::report::{ArmInfo, ArmReport, Candidate, OpeReport, SegmentReport, SlotReport};
use crate::service::Bandits;
use crate::slot::{AuditEntry, Objective};
use crate::{api, ope, Error};
use assets::{SCRIPT, STYLE};

/// Bootstrap resamples behind the page's off-policy intervals (fewer than the API's default, for speed).
pub const OPE_BOOTSTRAP: usize = 500;
/// Bootstrap seed (the API's default, so the page equals `GET /v1/bandits/{slot}/ope?bootstrap=500`).
pub const OPE_SEED: u32 = 12345;
/// Audit entries shown.
const AUDIT_ROWS: usize = 20;

macro_rules! w {
    ($dst:expr, $($arg:tt)*) => {
        let _ = write!($dst, $($arg)*);
    };
}

mod actions;

use actions::{actions_section, Viewer};

/// The dashboard's routes (merge them with [`crate::api::app`], whose endpoints the buttons call).
pub fn routes(bandits: Bandits) -> Router {
    Router::new()
        .route("/dashboard", get(index))
        .route("/dashboard/{slot}", get(slot_page))
        .with_state(bandits)
}

/// `s` safe to insert in HTML text and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes a URL query or path component.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            w!(out, "%{b:02X}");
        }
    }
    out
}

/// A proportion as a percentage (`0.04567` → `4.57%` with 2 decimals); `–` when not a number.
fn pct(x: f64, decimals: usize) -> String {
    if x.is_finite() {
        format!("{:.*}%", decimals, x * 100.0)
    } else {
        "–".into()
    }
}

/// Rates (CTR, CVR, rewards) with 2 decimals.
fn rate(x: f64) -> String {
    pct(x, 2)
}

/// Shares and probabilities with 1 decimal.
fn share(x: f64) -> String {
    pct(x, 1)
}

/// Money (EUR) with 2 decimals.
fn money(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.2}")
    } else {
        "–".into()
    }
}

/// The page's query.
#[derive(Debug, Clone, PartialEq)]
struct Params {
    days: f64,
    bucket_hours: f64,
    segment: String,
    policy: String,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            days: 7.0,
            bucket_hours: 6.0,
            segment: "All".into(),
            policy: "greedy".into(),
        }
    }
}

fn number(field: &str, v: Option<&String>, default: f64, lo: f64, hi: f64) -> Result<f64, Error> {
    let Some(v) = v else {
        return Ok(default);
    };
    match v.trim().parse::<f64>() {
        Ok(x) if x.is_finite() && x >= lo && x <= hi => Ok(x),
        _ => Err(Error::bad(
            field.to_string(),
            format!("`{v}` must be a number between {lo} and {hi}"),
        )),
    }
}

impl Params {
    /// Reads the query; the error names the parameter. The policy is checked against the slot later.
    fn parse(q: &BTreeMap<String, String>) -> Result<Params, Error> {
        const KNOWN: [&str; 4] = ["days", "bucket_hours", "segment", "policy"];
        if let Some(k) = q.keys().find(|k| !KNOWN.contains(&k.as_str())) {
            return Err(Error::bad(
                k.to_string(),
                format!("unknown parameter (the page takes {})", KNOWN.join(", ")),
            ));
        }
        let segment = q.get("segment").cloned().unwrap_or_else(|| "All".into());
        if segment != "All" && !SEGMENTS.contains(&segment.as_str()) {
            return Err(Error::bad(
                "segment",
                format!("`{segment}` must be All or one of {}", SEGMENTS.join(", ")),
            ));
        }
        Ok(Params {
            days: number("days", q.get("days"), 7.0, 0.01, 400.0)?,
            bucket_hours: number(
                "bucket_hours",
                q.get("bucket_hours"),
                6.0,
                0.01,
                24.0 * 31.0,
            )?,
            segment,
            policy: q.get("policy").cloned().unwrap_or_else(|| "greedy".into()),
        })
    }

    /// The page's URL with some values changed (defaults left out).
    fn url(&self, slot: &str, segment: &str, policy: &str, days: f64) -> String {
        let d = Params::default();
        let mut q = Vec::new();
        if days != d.days {
            q.push(format!("days={days}"));
        }
        if self.bucket_hours != d.bucket_hours {
            q.push(format!("bucket_hours={}", self.bucket_hours));
        }
        if segment != d.segment {
            q.push(format!("segment={}", encode(segment)));
        }
        if policy != d.policy {
            q.push(format!("policy={}", encode(policy)));
        }
        let mut u = format!("/dashboard/{}", encode(slot));
        if !q.is_empty() {
            u.push('?');
            u.push_str(&q.join("&"));
        }
        u
    }
}

/// A complete HTML document.
fn layout(title: &str, body_attrs: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{} · Lusso</title><style>{STYLE}</style></head><body{body_attrs}><main>{body}</main></body></html>\n",
        escape(title)
    )
}

fn html(status: StatusCode, page: String) -> Response {
    (status, [(header::CACHE_CONTROL, "no-store")], Html(page)).into_response()
}

/// An error as a page: the status, and the reason (which names the parameter at fault). A 5xx shows the request
/// id instead of our internal text; the log line with the same id has the cause.
fn error_page(e: &Error) -> Response {
    let id = pipelines::http::current_request_id().unwrap_or_default();
    let (status, title, reason) = match e {
        Error::BadInput { field, reason } => (
            StatusCode::BAD_REQUEST,
            "Bad request",
            format!("{field}: {reason}"),
        ),
        Error::NotFound(r) => (StatusCode::NOT_FOUND, "Not found", r.clone()),
        Error::Conflict(r) => (StatusCode::CONFLICT, "Conflict", r.clone()),
        Error::Unavailable(r) => {
            tracing::warn!(request_id = %id, cause = %r, "dashboard backend unavailable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "Temporarily unavailable",
                format!("A backend is unavailable; try again in a moment (request id {id})."),
            )
        }
        Error::Internal(r) => {
            tracing::error!(request_id = %id, cause = %r, "dashboard internal error");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                format!("Internal error (request id {id})."),
            )
        }
    };
    let body = format!(
        r#"<p><a href="/dashboard">← All slots</a></p><h1>{}</h1><section><p data-testid="error">{}</p></section>"#,
        escape(title),
        escape(&reason)
    );
    html(status, layout(title, "", &body))
}

async fn index(State(b): State<Bandits>) -> Response {
    if let Err(e) = b.sync().await {
        return error_page(&e);
    }
    let now = b.now();
    let slots = b.slots();
    let mut body = String::from("<h1>Banner slots</h1><p class=\"sub\">Choose a slot to see which banner wins for each shopper segment, and to pause, resume or force banners.</p><section>");
    if slots.is_empty() {
        body.push_str("<p data-testid=\"no-slots\">No slots yet: create one with <code>POST /v1/slots</code>.</p>");
    } else {
        body.push_str("<table><thead><tr><th>Slot</th><th>Policy</th><th>Banners live / total</th><th>Forced segments</th><th>Version</th></tr></thead><tbody>");
        for s in &slots {
            let live = s.arms.iter().filter(|a| a.is_live(now)).count();
            let forced: Vec<&str> = s.forced.keys().map(String::as_str).collect();
            w!(
                body,
                r#"<tr><td><a data-testid="slot-{n}" href="/dashboard/{u}">{n}</a></td><td>{}</td><td>{live} / {}</td><td>{}</td><td>{}</td></tr>"#,
                s.policy.kind.name(),
                s.arms.len(),
                if forced.is_empty() {
                    "–".to_string()
                } else {
                    escape(&forced.join(", "))
                },
                s.version,
                n = escape(&s.slot),
                u = encode(&s.slot),
            );
        }
        body.push_str("</tbody></table>");
    }
    body.push_str("</section>");
    html(StatusCode::OK, layout("Banner slots", "", &body))
}

async fn slot_page(
    State(b): State<Bandits>,
    Path(slot): Path<String>,
    principal: Option<Extension<Principal>>,
    csrf: Option<Extension<Csrf>>,
    query: Result<Query<BTreeMap<String, String>>, QueryRejection>,
) -> Response {
    let viewer = Viewer {
        name: principal.map(|Extension(p)| p.name.to_string()),
        csrf: csrf.map(|Extension(c)| c.0),
    };
    match slot_view(&b, &slot, query, &viewer).await {
        Ok(page) => html(StatusCode::OK, page),
        Err(e) => error_page(&e),
    }
}

/// What the OPE section shows.
#[derive(Debug, Clone, PartialEq)]
enum OpeView {
    Report(OpeReport),
    /// No decision has a learned reward in the window yet.
    NoData,
    Failed(String),
}

async fn slot_view(
    b: &Bandits,
    slot: &str,
    query: Result<Query<BTreeMap<String, String>>, QueryRejection>,
    viewer: &Viewer,
) -> Result<String, Error> {
    let Query(q) = query.map_err(|e| Error::bad("query", e.body_text()))?;
    let params = Params::parse(&q)?;
    b.sync().await?;
    let model = b
        .model(slot)
        .ok_or_else(|| Error::NotFound(format!("slot `{slot}` does not exist")))?;
    Candidate::parse(&params.policy, model.slot())?;
    let objective = model.slot().reward.objective;
    let (since, until) = api::window(b.now(), params.days);
    let bucket_secs = ((params.bucket_hours * 3600.0) as i64).max(1);
    let report = b.report(slot, since, until, bucket_secs).await?;
    let spec = ope::IntervalSpec {
        alpha: 0.05,
        n_bootstrap_samples: OPE_BOOTSTRAP,
        seed: OPE_SEED,
    };
    let ope = match b.ope(slot, &params.policy, since, until, spec).await {
        Ok(r) => OpeView::Report(r),
        Err(Error::Conflict(_)) => OpeView::NoData,
        Err(e) => OpeView::Failed(e.to_string()),
    };
    Ok(render(&report, &params, objective, &ope, viewer))
}

fn objective_text(o: Objective) -> &'static str {
    match o {
        Objective::Click => "a click on the banner",
        Objective::Conversion => "a purchase after clicking the banner (not returned)",
        Objective::Revenue => {
            "the net revenue after clicking the banner, as a share of the revenue cap"
        }
    }
}

fn arm_state(a: &ArmInfo, now: chrono::DateTime<chrono::Utc>) -> &'static str {
    if a.paused {
        "paused"
    } else if a.live {
        "live"
    } else if a.campaign_start.is_some_and(|s| now < s) {
        "scheduled"
    } else {
        "ended"
    }
}

/// A numeric cell: the rounded text, the raw value (full precision) in `data-value`.
fn num_cell(testid: &str, raw: impl std::fmt::Display, text: &str) -> String {
    format!(
        r#"<td class="num" data-testid="{}" data-value="{raw}">{text}</td>"#,
        escape(testid)
    )
}

fn rate_cell(testid: &str, r: &crate::report::Rate) -> String {
    format!(
        r#"<td class="num" data-testid="{}" data-value="{}" data-lower="{}" data-upper="{}">{}<span class="ci">[{}, {}]</span></td>"#,
        escape(testid),
        r.value,
        r.lower,
        r.upper,
        rate(r.value),
        rate(r.lower),
        rate(r.upper)
    )
}

fn verdict_text(verdict: &str) -> &'static str {
    match verdict {
        "sure" => "we are sure",
        "likely" => "likely, but not certain yet",
        _ => "too early to be sure",
    }
}

fn winner_section(seg: &str, report: &SlotReport, s: Option<&SegmentReport>) -> String {
    let mut out = String::from("<section id=\"winner\">");
    match s.and_then(|s| s.winner.as_ref().map(|w| (s, w))) {
        Some((s, w)) => {
            w!(
                out,
                r#"<p class="winner" data-testid="winner" data-arm="{w}" data-value="{}">Winner for {}: {w} — {} (P(best) {})</p><p class="muted">P(best) is the probability that the banner has the highest reward rate, given everything learned so far (not only this window). We are sure at 95% or more, it is likely at 75%.</p>"#,
                s.winner_prob_best,
                escape(seg),
                verdict_text(&s.verdict),
                share(s.winner_prob_best),
                w = escape(w)
            );
        }
        None => {
            w!(
                out,
                r#"<p class="winner" data-testid="winner">No winner for {} yet: no decisions in the last {} days.</p>"#,
                escape(seg),
                report_days(report)
            );
        }
    }
    if let Some(f) = s.and_then(|s| s.forced.as_ref()) {
        w!(
            out,
            r#"<p class="note" data-testid="forced">Forced: every {} shopper sees <strong>{}</strong>, whatever the policy would choose. Use “Unforce” below to let the policy decide again.</p>"#,
            escape(seg),
            escape(f)
        );
    }
    out.push_str("</section>");
    out
}

fn report_days(r: &SlotReport) -> String {
    let secs = (r.until - r.since).num_seconds() - 1;
    format!("{}", (secs as f64 / 86_400.0 * 100.0).round() / 100.0)
}

fn arms_section(report: &SlotReport, s: Option<&SegmentReport>) -> String {
    let mut out = String::from("<section id=\"arms\"><h2>Banners</h2><div class=\"table-wrap\"><table><thead><tr><th>Banner</th><th>State</th><th>Decisions</th><th>Traffic share</th><th>Clicks</th><th>CTR [95% interval]</th><th>Conversions</th><th>CVR [95% interval]</th><th>Revenue / impression (EUR)</th><th>Posterior mean</th><th>P(best)</th><th>Floor</th></tr></thead><tbody>");
    for (i, info) in report.arms.iter().enumerate() {
        let id = &info.arm_id;
        let e = escape(id);
        let state = arm_state(info, report.generated_at);
        w!(
            out,
            r#"<tr data-arm="{e}"><th scope="row"><span class="swatch" style="background:{}"></span>{e}</th><td class="state {state}" data-testid="state-{e}">{state}</td>"#,
            svg::color(i)
        );
        match s.and_then(|s| s.arms.iter().find(|a| &a.arm_id == id)) {
            Some(a) => out.push_str(&stat_cells(a)),
            None => {
                out.push_str(r#"<td class="num muted" colspan="9">no data for this segment</td>"#)
            }
        }
        let floor = info.traffic_floor;
        out.push_str(&num_cell(&format!("floor-{id}"), floor, &share(floor)));
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table></div><p class=\"muted\">Traffic share: the banner's share of this segment's decisions in the window. CTR and CVR: clicks and conversions per decision, with the range the true rate lies in with 95% confidence. Posterior mean: the expected reward rate learned so far. Floor: the minimum share of traffic the banner keeps while the policy learns.</p></section>");
    out
}

fn stat_cells(a: &ArmReport) -> String {
    let t = |name: &str| format!("{name}-{}", a.arm_id);
    [
        num_cell(&t("decisions"), a.decisions, &a.decisions.to_string()),
        num_cell(&t("share"), a.share, &share(a.share)),
        num_cell(&t("clicks"), a.clicks, &a.clicks.to_string()),
        rate_cell(&t("ctr"), &a.ctr),
        num_cell(&t("conversions"), a.conversions, &a.conversions.to_string()),
        rate_cell(&t("cvr"), &a.cvr),
        num_cell(
            &t("rpi"),
            a.revenue_per_impression,
            &money(a.revenue_per_impression),
        ),
        num_cell(
            &t("posterior-mean"),
            a.posterior_mean,
            &rate(a.posterior_mean),
        ),
        num_cell(&t("prob-best"), a.prob_best, &share(a.prob_best)),
    ]
    .concat()
}

fn charts_section(report: &SlotReport, s: Option<&SegmentReport>) -> String {
    let arms: Vec<String> = report.arms.iter().map(|a| a.arm_id.clone()).collect();
    let series = s.map(|s| s.series.as_slice()).unwrap_or(&[]);
    let rates: Vec<(String, crate::report::Rate)> = report
        .arms
        .iter()
        .map(|info| {
            let r = s
                .and_then(|s| s.arms.iter().find(|a| a.arm_id == info.arm_id))
                .map_or(crate::report::wilson(0, 0), |a| a.ctr);
            (info.arm_id.clone(), r)
        })
        .collect();
    format!(
        "<section id=\"share\"><h2>Traffic share over time</h2>{}<p class=\"muted\">Each column is {} hours of decisions; its colours show how the policy split them between the banners. A growing colour means that banner is winning traffic.</p></section><section id=\"ctr\"><h2>Click-through rate with 95% interval</h2>{}<p class=\"muted\">Dots are the observed CTR in the window, bars the range the true CTR lies in with 95% confidence. When two bars do not overlap, the difference is very unlikely to be chance.</p></section>",
        svg::share_chart(&arms, series, report.since, report.until, report.bucket_secs),
        report.bucket_secs as f64 / 3600.0,
        svg::ctr_chart(&rates)
    )
}

fn policy_label(p: &str) -> String {
    match p {
        "uniform" => "Uniform (every live banner equally)".into(),
        "greedy" => "Greedy (the best banner so far, per segment)".into(),
        "thompson" => "Thompson sampling (today's policy, frozen)".into(),
        _ => format!("Always {}", p.strip_prefix("arm:").unwrap_or(p)),
    }
}

fn ope_section(
    report: &SlotReport,
    params: &Params,
    objective: Objective,
    ope: &OpeView,
) -> String {
    let mut out = String::from("<section id=\"ope\"><h2>What would policy B have earned on last week's traffic?</h2><nav data-testid=\"policies\">Policy B: ");
    let mut policies: Vec<String> = ["uniform", "greedy", "thompson"].map(String::from).to_vec();
    policies.extend(report.arms.iter().map(|a| format!("arm:{}", a.arm_id)));
    for p in &policies {
        if *p == params.policy {
            w!(out, "<strong>{}</strong>", escape(&policy_label(p)));
        } else {
            w!(
                out,
                r#"<a href="{}">{}</a>"#,
                escape(&params.url(&report.slot, &params.segment, p, params.days)),
                escape(&policy_label(p))
            );
        }
    }
    out.push_str("</nav>");
    let seg = &params.segment;
    match ope {
        OpeView::NoData => {
            w!(
                out,
                r#"<p class="note" data-testid="ope-note">Not enough data yet: no decision in the last {} days has a final reward, so there is nothing to replay. Come back once rewards have been learned.</p>"#,
                report_days(report)
            );
        }
        OpeView::Failed(reason) => {
            w!(
                out,
                r#"<p class="note" data-testid="ope-note">The estimate could not be computed: {}</p>"#,
                escape(reason)
            );
        }
        OpeView::Report(r) => match r.segments.iter().find(|s| &s.segment == seg) {
            None => {
                w!(
                    out,
                    r#"<p class="note" data-testid="ope-note">No decision for {} in the last {} days has a final reward yet.</p>"#,
                    escape(seg),
                    report_days(report)
                );
            }
            Some(s) => {
                out.push_str("<table><thead><tr><th>Estimator</th><th>Reward per impression</th><th>95% interval</th></tr></thead><tbody>");
                w!(
                    out,
                    r#"<tr><th scope="row">What we actually earned (logged policy)</th>{}<td>–</td></tr>"#,
                    num_cell("ope-logged", s.logged_value, &rate(s.logged_value))
                );
                for (key, name, e) in [
                    ("dr", "DR — doubly robust (recommended)", &s.dr),
                    ("ipw", "IPS — inverse propensity scoring", &s.ipw),
                    ("snipw", "SNIPS — self-normalised IPS", &s.snipw),
                    ("dm", "DM — direct method (reward model only)", &s.dm),
                ] {
                    w!(
                        out,
                        r#"<tr><th scope="row">{name}</th>{}<td data-testid="ope-{key}-interval" data-lower="{}" data-upper="{}">[{}, {}]</td></tr>"#,
                        num_cell(&format!("ope-{key}"), e.value, &rate(e.value)),
                        e.interval.lower,
                        e.interval.upper,
                        rate(e.interval.lower),
                        rate(e.interval.upper)
                    );
                }
                out.push_str("</tbody></table>");
                let b = policy_label(&params.policy);
                let verdict = if s.dr.interval.lower > s.logged_value {
                    "would most likely have earned <strong>more</strong> than what we served"
                } else if s.dr.interval.upper < s.logged_value {
                    "would most likely have earned <strong>less</strong> than what we served"
                } else {
                    "would have earned about the same as what we served: the difference is within the uncertainty"
                };
                w!(
                    out,
                    r#"<p data-testid="ope-verdict">{}: {verdict} (DR {} vs {} logged).</p><p class="muted">Replays {} decisions of {} from {} to {} that have a final reward (here the reward is {}). Each estimate is the average reward per impression policy B would have earned on exactly this traffic; the interval is a bootstrap 95% interval over {OPE_BOOTSTRAP} resamples. DR combines the logged rewards with a model of them and is usually the most reliable; IPS and SNIPS only reweight logged rewards, DM only uses the model.</p>"#,
                    escape(&b),
                    rate(s.dr.value),
                    rate(s.logged_value),
                    s.rounds,
                    escape(seg),
                    r.since.format("%Y-%m-%d %H:%M"),
                    r.until.format("%Y-%m-%d %H:%M UTC"),
                    objective_text(objective)
                );
            }
        },
    }
    out.push_str("</section>");
    out
}

/// A short reading of an audit entry's detail.
fn audit_detail(e: &AuditEntry) -> String {
    match e.action.as_str() {
        "create" => "created the slot".into(),
        "update" => "changed the slot's configuration".into(),
        "delete" => "deleted the slot".into(),
        _ => match e.detail.as_object() {
            Some(o) => o
                .iter()
                .filter(|(k, _)| k.as_str() != "action")
                .map(|(k, v)| match (k.as_str(), v) {
                    ("traffic_floor", serde_json::Value::Null) => {
                        "traffic_floor: slot default".to_string()
                    }
                    ("traffic_floor", v) => match v.as_f64() {
                        Some(f) => format!("traffic_floor: {}", share(f)),
                        None => format!("traffic_floor: {v}"),
                    },
                    (k, serde_json::Value::String(s)) => format!("{k}: {s}"),
                    (k, v) => format!("{k}: {v}"),
                })
                .collect::<Vec<_>>()
                .join(", "),
            None => e.detail.to_string(),
        },
    }
}

fn audit_section(audit: &[AuditEntry]) -> String {
    let mut out = String::from("<section id=\"audit\"><h2>Audit trail</h2>");
    if audit.is_empty() {
        out.push_str("<p class=\"muted\">No changes recorded.</p>");
    } else {
        out.push_str("<table data-testid=\"audit\"><thead><tr><th>When</th><th>Who</th><th>Action</th><th>Detail</th><th>Version</th></tr></thead><tbody>");
        for e in audit.iter().take(AUDIT_ROWS) {
            let detail: String = audit_detail(e).chars().take(300).collect();
            w!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                e.at.format("%Y-%m-%d %H:%M:%S UTC"),
                escape(&e.actor),
                escape(&e.action),
                escape(&detail),
                e.version
            );
        }
        out.push_str("</tbody></table>");
    }
    out.push_str("</section>");
    out
}

/// The slot page for `params.segment`.
fn render(
    report: &SlotReport,
    params: &Params,
    objective: Objective,
    ope: &OpeView,
    viewer: &Viewer,
) -> String {
    let seg = params.segment.as_str();
    let s = report.segments.iter().find(|s| s.segment == seg);
    let mut body = String::new();
    w!(
        body,
        r#"<p><a href="/dashboard">← All slots</a></p><h1 data-testid="slot-title">{}</h1><p class="sub">Policy <code data-testid="policy">{}</code> · version <span data-testid="version">{}</span> · last {} days ({} – {}) · generated {}</p>"#,
        escape(&report.slot),
        escape(&report.policy),
        report.version,
        report_days(report),
        report.since.format("%Y-%m-%d %H:%M"),
        report.until.format("%Y-%m-%d %H:%M UTC"),
        report.generated_at.format("%Y-%m-%d %H:%M:%S UTC")
    );
    body.push_str("<nav data-testid=\"segments\">Segment: ");
    for name in std::iter::once("All").chain(SEGMENTS) {
        let n = report
            .segments
            .iter()
            .find(|x| x.segment == name)
            .map_or(0, |x| x.decisions);
        let label = format!("{name} ({n})");
        if name == seg {
            w!(body, "<strong>{}</strong>", escape(&label));
        } else {
            w!(
                body,
                r#"<a href="{}">{}</a>"#,
                escape(&params.url(&report.slot, name, &params.policy, params.days)),
                escape(&label)
            );
        }
    }
    body.push_str("</nav><nav data-testid=\"windows\">Window: ");
    for (days, label) in [
        (1.0, "Last 24 hours"),
        (7.0, "Last 7 days"),
        (30.0, "Last 30 days"),
    ] {
        if days == params.days {
            w!(body, "<strong>{label}</strong>");
        } else {
            w!(
                body,
                r#"<a href="{}">{label}</a>"#,
                escape(&params.url(&report.slot, seg, &params.policy, days))
            );
        }
    }
    body.push_str("</nav>");
    body.push_str(&winner_section(seg, report, s));
    body.push_str(&arms_section(report, s));
    body.push_str(&actions_section(report, params, s, viewer));
    body.push_str(&charts_section(report, s));
    body.push_str(&ope_section(report, params, objective, ope));
    body.push_str(&audit_section(&report.audit));
    body.push_str(SCRIPT);
    let attrs = format!(
        r#" data-slot="{}" data-segment="{}" data-csrf="{}""#,
        escape(&report.slot),
        escape(seg),
        escape(viewer.csrf.as_deref().unwrap_or_default())
    );
    layout(&format!("{} — {seg}", report.slot), &attrs, &body)
}

#[cfg(test)]
mod tests;
