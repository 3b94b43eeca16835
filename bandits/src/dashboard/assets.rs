//! The dashboard's inline stylesheet and script (no external assets: the page works offline).

pub(super) const STYLE: &str = r#"
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1d1d1f;background:#f6f6f4}
main{max-width:1280px;margin:0 auto;padding:16px 24px 48px}
h1{margin:8px 0 4px;font-size:1.7em}h2{font-size:1.2em;margin:0 0 10px}
section{background:#fff;border:1px solid #e2e2de;border-radius:8px;padding:16px;margin:16px 0}
a{color:#0b5cad}.sub{color:#555;margin:0}.muted{color:#666}
nav a,nav strong{display:inline-block;margin:2px 4px 2px 0;padding:3px 9px;border-radius:12px;border:1px solid #ccd;text-decoration:none}
nav strong{background:#0b5cad;color:#fff;border-color:#0b5cad}
table{border-collapse:collapse;width:100%;font-size:.93em}
th,td{padding:6px 8px;border-bottom:1px solid #eee;text-align:left;vertical-align:top}
td.num{text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums}
.ci{color:#777;font-size:.85em;display:block}
.swatch{display:inline-block;width:11px;height:11px;border-radius:2px;margin-right:6px}
.state{font-weight:600}.live{color:#1a7f37}.paused{color:#b35900}.ended,.scheduled{color:#777}
.winner{font-size:1.25em;font-weight:600;margin:0}
.note{background:#fff8e1;border:1px solid #f0d98a;padding:8px 12px;border-radius:6px}
button{padding:4px 10px;border-radius:5px;border:1px solid #889;background:#f4f4f8;cursor:pointer}
button:hover{background:#e6e6f0}input[type=number]{width:5.5em}
#action-status.error{color:#b00020;font-weight:600}#action-status.ok{color:#1a7f37}
.toolbar{display:flex;gap:10px;align-items:center;flex-wrap:wrap}
td.actions,th[scope=row]{white-space:nowrap}.table-wrap{overflow-x:auto}
"#;

/// The actions: every button calls `POST /v1/slots/{slot}/actions` with the session's CSRF token (the audit
/// names the signed-in key), then reloads.
pub(super) const SCRIPT: &str = r#"<script>
(function () {
  var slot = document.body.getAttribute('data-slot');
  var segment = document.body.getAttribute('data-segment');
  var csrf = document.body.getAttribute('data-csrf') || '';
  var status = document.getElementById('action-status');
  function show(msg, ok) { status.textContent = msg; status.className = ok ? 'ok' : 'error'; }
  function act(body) {
    show('Saving…', true);
    fetch('/v1/slots/' + encodeURIComponent(slot) + '/actions', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': csrf },
      body: JSON.stringify(body)
    }).then(function (resp) {
      if (resp.ok) { location.reload(); return; }
      return resp.text().then(function (text) {
        var reason = resp.status + ' ' + resp.statusText;
        try { var j = JSON.parse(text); if (j && j.error && j.error.message) reason = j.error.message; } catch (e) {}
        show('Not saved: ' + reason);
      });
    }).catch(function (e) { show('Could not reach the server: ' + e); });
  }
  document.querySelectorAll('button[data-action]').forEach(function (btn) {
    btn.addEventListener('click', function () {
      var a = btn.getAttribute('data-action'), arm = btn.getAttribute('data-arm');
      if (a === 'pause' || a === 'resume') {
        act({ action: a, arm_id: arm });
      } else if (a === 'floor') {
        var raw = btn.parentNode.querySelector('input[type=number]').value.trim();
        var pct = raw === '' ? null : Number(raw);
        if (pct !== null && !(pct >= 0 && pct <= 50)) { show('The floor must be a percentage between 0 and 50 (empty: the slot default).'); return; }
        act({ action: 'floor', arm_id: arm, traffic_floor: pct === null ? null : pct / 100 });
      } else if (a === 'force') {
        act({ action: 'force', segment: segment, arm_id: document.getElementById('force-arm').value });
      } else if (a === 'unforce') {
        act({ action: 'unforce', segment: segment });
      }
    });
  });
})();
</script>"#;
