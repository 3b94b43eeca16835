//! The actions section of a slot's page: who is signed in (the edge's key), per banner Pause/Resume and its
//! traffic floor, and forcing a winner for the segment; the buttons' script sends the session's CSRF token.

use super::*;

/// Who looks at the page (the edge's [`Principal`]) and the session's CSRF token its buttons send.
#[derive(Debug, Clone, Default)]
pub(crate) struct Viewer {
    pub(super) name: Option<String>,
    pub(super) csrf: Option<String>,
}

/// Who is signed in, then per banner Pause/Resume and its traffic floor, then forcing a winner for the segment.
pub(super) fn actions_section(
    report: &SlotReport,
    params: &Params,
    s: Option<&SegmentReport>,
    viewer: &Viewer,
) -> String {
    let who = match &viewer.name {
        Some(n) => format!(
            r#"Signed in as <b data-testid="signed-in">{}</b><span class="muted">Every change you make here is recorded under this key's name.</span><form method="post" action="/console/logout"><button type="submit" data-testid="logout">Log out</button></form>"#,
            escape(n)
        ),
        None => {
            r#"<span class="muted">Not signed in: changes are recorded as anonymous.</span>"#.into()
        }
    };
    let mut out = format!(
        r#"<section id="actions"><h2>Actions</h2><p class="toolbar">{who}</p><p id="action-status" data-testid="action-status" role="status"></p><table><thead><tr><th>Banner</th><th>State</th><th>Serve it?</th><th>Traffic floor (%, empty: the slot default)</th></tr></thead><tbody>"#
    );
    for (i, info) in report.arms.iter().enumerate() {
        let e = escape(&info.arm_id);
        let state = arm_state(info, report.generated_at);
        let (action, label) = if info.paused {
            ("resume", "Resume")
        } else {
            ("pause", "Pause")
        };
        w!(
            out,
            r#"<tr><th scope="row"><span class="swatch" style="background:{}"></span>{e}</th><td class="state {state}">{state}</td><td><button type="button" data-action="{action}" data-arm="{e}" data-testid="{action}-{e}">{label}</button></td><td class="actions"><input type="number" min="0" max="50" step="0.1" aria-label="Traffic floor for {e} in percent" data-testid="floor-input-{e}" value="{}"> % <button type="button" data-action="floor" data-arm="{e}" data-testid="set-floor-{e}">Set floor</button></td></tr>"#,
            svg::color(i),
            (info.traffic_floor * 1000.0).round() / 10.0
        );
    }
    out.push_str("</tbody></table>");
    let seg = &params.segment;
    if seg == "All" {
        out.push_str("<p class=\"muted\">To force a winner, choose a segment above.</p>");
    } else {
        w!(
            out,
            r#"<p class="toolbar"><label for="force-arm">Always show {} shoppers</label><select id="force-arm" data-testid="force-arm">"#,
            escape(seg)
        );
        for a in &report.arms {
            w!(out, "<option>{}</option>", escape(&a.arm_id));
        }
        out.push_str(r#"</select><button type="button" data-action="force" data-testid="force">Force winner for this segment</button>"#);
        if let Some(f) = s.and_then(|s| s.forced.as_ref()) {
            w!(
                out,
                r#"<button type="button" data-action="unforce" data-testid="unforce">Unforce ({})</button>"#,
                escape(f)
            );
        }
        out.push_str("</p>");
    }
    out.push_str("</section>");
    out
}
