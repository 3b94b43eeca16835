//! The demo storefront page (`GET /storefront`): a shopper's home recommendations with prices in their
//! market, the `home_hero` banner chosen by the bandits, and the rules that acted. Switching the segment or
//! the market re-asks the API, so a merchandiser sees a rule take effect. Plain HTML + fetch, no build step.

/// The page.
pub const PAGE: &str = r##"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Lusso storefront (demo)</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
 body{font-family:Georgia,serif;margin:0;background:#faf8f5;color:#222}
 header{padding:14px 24px;background:#111;color:#f3e9d2;display:flex;gap:18px;align-items:center;flex-wrap:wrap}
 header h1{font-size:20px;margin:0 18px 0 0;letter-spacing:3px}
 label{font-size:13px} select,input{font-size:13px;padding:3px}
 #hero{margin:18px 24px;padding:26px;background:#e8dcc4;border-radius:4px;min-height:60px}
 #hero small{color:#555}
 #grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(190px,1fr));gap:14px;margin:0 24px 24px}
 .card{background:#fff;border:1px solid #e4ddd0;padding:12px;border-radius:4px;font-size:13px}
 .card b{display:block;font-size:14px;margin-bottom:4px}
 .price{font-size:15px;margin:6px 0} .was{text-decoration:line-through;color:#999;margin-left:6px}
 .why{color:#7a6a4f;font-size:11px} .rule{color:#a0341c;font-weight:bold}
 #meta{margin:0 24px 8px;font-size:12px;color:#555}
</style></head><body>
<header><h1>LUSSO</h1>
 <label>Shopper <input id="user" value="U0000001" size="10"></label>
 <label>Segment <select id="segment"><option value="">(shopper's own)</option>
  <option>New</option><option>Active Browser</option><option>High-Value Returning</option>
  <option>At Risk</option><option>Lapsed</option><option>Occasional</option></select></label>
 <label>Market <select id="market"><option>IT</option><option>FR</option><option>DE</option><option>GB</option>
  <option>CH</option><option>US</option></select></label>
 <label>Size <input id="size" size="4" placeholder="any"></label>
 <button id="go">Show</button>
</header>
<div id="hero">Loading the hero banner…</div>
<div id="meta"></div>
<div id="grid"></div>
<script>
const $ = id => document.getElementById(id);
// The publishable key (`?key=pk_…`, as `lusso demo` prints the page's address; remembered in this browser).
const KEY = new URLSearchParams(location.search).get('key') || localStorage.getItem('lusso_pk') || '';
if (KEY) localStorage.setItem('lusso_pk', KEY);
const AUTH = KEY ? {'authorization': 'Bearer ' + KEY} : {};
function esc(s){return String(s).replace(/[&<>"']/g,c=>({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;',"'":'&#39;'}[c]));}
async function hero(user, market){
  try{
    const r = await fetch('/v1/decisions',{method:'POST',headers:{...AUTH,'content-type':'application/json'},
      body:JSON.stringify({slot:'home_hero',user_id:user,context:{market:market,device:'desktop'}})});
    const d = await r.json();
    $('hero').innerHTML = r.ok ? `<b>${esc(d.arm_id)}</b> <small>banner chosen by ${esc(d.policy)} · propensity ${Number(d.propensity).toFixed(3)}</small>`
      : `<small>no banner: ${esc((d.error||{}).message||r.status)}</small>`;
  }catch(e){ $('hero').textContent = 'no banner service'; }
}
async function recs(){
  const user = $('user').value.trim(), market = $('market').value, seg = $('segment').value, size = $('size').value.trim();
  const q = new URLSearchParams({placement:'home', n:'12', market});
  if(user) q.set('user_id', user); if(seg) q.set('segment', seg); if(size) q.set('size', size);
  hero(user, market);
  const r = await fetch('/v1/recommendations?'+q, {headers: AUTH});
  const d = await r.json();
  if(!r.ok){ $('grid').innerHTML = `<p>${esc((d.error||{}).field||'')} ${esc((d.error||{}).message)}</p>`; return; }
  $('meta').textContent = `segment ${d.segment} · market ${d.market} · model ${d.model_version||'none'} · fallback ${d.fallback||'none'}`
    + (d.degraded.length ? ' · degraded: '+d.degraded.join(', ') : '')
    + (Object.keys(d.experiments).length ? ' · experiments: '+JSON.stringify(d.experiments) : '');
  $('grid').innerHTML = d.items.map(i => {
    const p = i.price ? `${i.price.amount.toLocaleString(undefined,{style:'currency',currency:i.price.currency})}`
      + (i.price.compare_at ? `<span class="was">${i.price.compare_at.toLocaleString(undefined,{style:'currency',currency:i.price.currency})}</span>` : '') : '';
    const why = i.reasons.map(r => r.startsWith('rule:') ? `<span class="rule">${esc(r)}</span>` : esc(r)).join(' · ');
    return `<div class="card"><b>${esc(i.product_id)}</b><div class="price">${p}</div><div class="why">${why}</div></div>`;
  }).join('');
}
$('go').onclick = recs; ['segment','market'].forEach(id => $(id).onchange = recs);
recs();
</script></body></html>
"##;
