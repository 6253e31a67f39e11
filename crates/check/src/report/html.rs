//! A single self-contained HTML report: the verdict table, the story of
//! the run (`super::story`: lock lanes, faults, violations, latency and
//! throughput, as SVG), then a timeline of every operation drawn on a
//! canvas, like Jepsen's but usable at 10k+ operations.
//!
//! Why a canvas: an SVG or DOM element per operation makes browsers crawl
//! at ~10k operations, while a canvas redraws 100k bars in milliseconds.
//! When bars are thinner than two pixels, each lane draws at most one bar
//! per pixel column (the most severe), which is the aggregation that keeps
//! dense regions readable. Zoom with the wheel, pan by dragging, reset with
//! a double click; the evidence list zooms to the operations it names.
//! Nothing is loaded from outside the file.

use super::escape::esc;
use crate::history::{History, Op, Outcome, Process};
use crate::nemesis::Fault;
use crate::verdict::{overall, Status, Verdict};
use crate::view::View;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fmt::Write;

/// Longest value shown in a tooltip, in characters.
const VALUE_MAX: usize = 240;

/// Renders the report. `verdicts` may be empty (a timeline alone).
pub fn render_html(history: &History, verdicts: &[Verdict]) -> String {
    let data = timeline_data(history, verdicts);
    // `<` only occurs inside JSON strings, where `\u003c` means the same;
    // this keeps `</script>` in a value from ending the script.
    let data = data.to_string().replace('<', "\\u003c");
    let mut table = String::new();
    for v in verdicts {
        let _ = write!(
            table,
            "<tr class=\"{st}\"><td>{p}</td><td>{name}</td><td class=\"st\">{st}</td><td>{msg}</td></tr>",
            st = v.status,
            p = v.property,
            name = esc(v.property.name()),
            msg = esc(&v.message),
        );
    }
    let status = overall(verdicts);
    let title = match status {
        Status::Valid => "valid",
        Status::Invalid => "INVALID",
        Status::Unknown => "unknown",
    };
    TEMPLATE
        .replace("{{TITLE}}", title)
        .replace("{{STATUS}}", &status.to_string())
        .replace("{{EVENTS}}", &history.events.len().to_string())
        .replace("{{TABLE}}", &table)
        .replace("{{STORY}}", &super::story::render_story(history, verdicts))
        .replace("{{DATA}}", &data)
}

fn short(v: &Value) -> String {
    if v.is_null() {
        return String::new();
    }
    let s = v.to_string();
    if s.chars().count() <= VALUE_MAX {
        return s;
    }
    let mut cut: String = s.chars().take(VALUE_MAX).collect();
    cut.push('…');
    cut
}

/// The data the page's script draws: lanes, operations, fault periods and
/// the evidence, with times relative to the first event.
fn timeline_data(history: &History, verdicts: &[Verdict]) -> Value {
    let ops = history.operations().unwrap_or_default();
    let t0 = history.events.iter().map(|e| e.time).min().unwrap_or(0);
    let t1 = history.end_time().max(t0 + 1);

    // Lanes: clients in order, then other named processes; the log read-back
    // has no real time of its own and the nemesis is drawn as shading.
    let mut lanes: BTreeMap<&Process, usize> = BTreeMap::new();
    let shown = |op: &Op<'_>| !op.process().is_named(Process::LOG) && !op.process().is_named(Process::NEMESIS);
    for op in ops.iter().filter(|o| shown(o)) {
        lanes.insert(op.process(), 0);
    }
    for (n, lane) in lanes.values_mut().enumerate() {
        *lane = n;
    }

    // event index -> position in `rows`, to resolve evidence
    let mut by_event: BTreeMap<usize, usize> = BTreeMap::new();
    let mut rows = Vec::new();
    for op in ops.iter().filter(|o| shown(o)) {
        let n = rows.len();
        for i in op.event_indices() {
            by_event.insert(i, n);
        }
        let status = match op.outcome() {
            Outcome::Ok => 0,
            Outcome::Fail => 1,
            Outcome::Info => 2,
            Outcome::Pending => 3,
        };
        let result = op.done.filter(|_| op.invoke.is_some()).map_or(Value::Null, |e| e.value.clone());
        rows.push(json!([
            lanes[op.process()],
            op.start() - t0,
            op.end().map_or(-1i64, |e| i64::try_from(e - t0).unwrap_or(i64::MAX)),
            status,
            op.f(),
            short(&op.first.value),
            short(&result),
            0,
            op.invoke.or(op.completion),
            op.first.node.as_deref().or(op.done.and_then(|e| e.node.as_deref())),
            [op.first.wall, op.done.filter(|_| op.invoke.is_some()).and_then(|e| e.wall)],
        ]));
    }

    let mut evidence = Vec::new();
    for v in verdicts {
        for ev in &v.evidence {
            let mut marked: Vec<usize> = ev.events.iter().filter_map(|i| by_event.get(i).copied()).collect();
            marked.sort_unstable();
            marked.dedup();
            for &r in &marked {
                rows[r][7] = json!(1);
            }
            evidence.push(json!({"p": v.property, "note": ev.note, "ops": marked}));
        }
    }

    let mut faults = Vec::new();
    let mut marks = Vec::new();
    if let Ok(view) = View::build(history) {
        let mut open: Vec<(&Fault, u64)> = Vec::new();
        for n in &view.nemesis {
            let t = n.time - t0;
            marks.push(json!([
                t,
                format!("{} {}", if n.start { "start" } else { "stop" }, n.fault.name()),
                short(&n.op.first.value)
            ]));
            if n.start {
                open.push((&n.fault, t));
            } else if n.fault == Fault::HealAll {
                faults.extend(open.drain(..).map(|(f, s)| json!([s, t, f.name()])));
            } else if let Some(k) = open.iter().position(|(f, _)| f.same_kind(&n.fault)) {
                let (f, s) = open.remove(k);
                faults.push(json!([s, t, f.name()]));
            }
        }
        faults.extend(open.into_iter().map(|(f, s)| json!([s, t1 - t0, f.name()])));
    }

    let contradictions = history.wall_contradictions();
    json!({
        "span": t1 - t0,
        "lanes": lanes.keys().map(|p| p.to_string()).collect::<Vec<_>>(),
        "ops": rows,
        "faults": faults,
        "marks": marks,
        "evidence": evidence,
        "hidden": ops.iter().filter(|o| o.process().is_named(Process::LOG)).count(),
        "wall_contradictions": contradictions.len(),
        // The first, to start looking: the earlier-recorded event, then the one whose clock says otherwise.
        "wall_first": contradictions.first().map(|&(a, b)| {
            let (a, b) = (&history.events[a], &history.events[b]);
            json!([a.process.to_string(), a.time - t0, b.process.to_string(), b.time - t0])
        }),
    })
}

const TEMPLATE: &str = r##"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>fenced check: {{TITLE}}</title>
<style>
body{font:13px/1.4 system-ui,sans-serif;margin:16px;color:#222}
h1{font-size:18px;margin:0 0 8px}h2{font-size:15px;margin:14px 0 6px}
svg.story,svg.perf{border:1px solid #ddd;background:#fff;max-width:1400px}
table{border-collapse:collapse;margin-bottom:12px}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}
tr.valid .st{background:#d8f5d0}tr.invalid .st{background:#f7c6c6;font-weight:bold}tr.unknown .st{background:#f5e6b0}
#wrap{position:relative;border:1px solid #bbb;max-height:75vh;overflow-y:auto;overflow-x:hidden}
canvas{display:block;cursor:grab}
#tip{position:fixed;pointer-events:none;background:#fffff0;border:1px solid #999;padding:4px 6px;font:12px monospace;white-space:pre-wrap;max-width:520px;display:none;z-index:2}
.legend span{display:inline-block;padding:0 6px;margin-right:6px;border:1px solid #999}
#ev li{cursor:pointer}#ev li:hover{text-decoration:underline}
.muted{color:#777}
</style></head><body>
<h1>fenced check: <span class="{{STATUS}}">{{TITLE}}</span> <span class="muted">({{EVENTS}} events)</span></h1>
<table><tr><th>id</th><th>property</th><th>verdict</th><th>detail</th></tr>{{TABLE}}</table>
{{STORY}}
<h2>Every operation, per process</h2>
<div class="legend"><span style="background:#8fd18f">ok</span><span style="background:#f4a4a4">fail</span><span style="background:#f7d27a">info</span><span style="background:#ddd">pending</span><span style="background:#fff;border:2px solid #d00">in evidence</span><span style="background:rgba(255,140,0,.18)">fault active</span>
<span class="muted">wheel: zoom · drag: pan · double click: reset</span> <span id="range" class="muted"></span></div>
<div id="wrap"><canvas id="tl"></canvas></div>
<div id="tip"></div>
<h2 style="font-size:15px">Evidence</h2><ol id="ev"></ol>
<p class="muted" id="note"></p>
<script>
const D={{DATA}};
const cv=document.getElementById('tl'),ctx=cv.getContext('2d'),wrap=document.getElementById('wrap'),tip=document.getElementById('tip');
const G=110,AX=22,LH=D.lanes.length>80?8:D.lanes.length>40?11:16;
const COL=['#8fd18f','#f4a4a4','#f7d27a','#ddd'],PRI=[0,2,1,0];
let v0=0,v1=D.span,W=800,H=100;
const byLane=D.lanes.map(()=>[]);D.ops.forEach((o,i)=>byLane[o[0]].push(i));
function end(o){return o[2]<0?D.span:o[2]}
function X(t){return G+(t-v0)/(v1-v0)*(W-G)}
function T(x){return v0+(x-G)/(W-G)*(v1-v0)}
function fmt(ns){ns=Math.round(ns);if(Math.abs(ns)>=1e9)return(ns/1e9).toFixed(3)+'s';if(Math.abs(ns)>=1e6)return(ns/1e6).toFixed(3)+'ms';if(Math.abs(ns)>=1e3)return(ns/1e3).toFixed(1)+'µs';return ns+'ns'}
function iso(ms){return new Date(ms).toISOString().replace('T',' ').replace('Z','')}
function bound(w){return iso((w[0]+w[1])/2)+' ±'+(w[1]-w[0])/2+'ms'+(w[2]?'':' (unsynced: not to be trusted)')}
function wall(ws){const p=[];if(ws[0])p.push((ws[1]?'wall at invoke: ':'wall: ')+bound(ws[0]));if(ws[1])p.push('wall at completion: '+bound(ws[1]));return p.length?'\n'+p.join('\n'):''}
function size(){const r=window.devicePixelRatio||1;W=wrap.clientWidth;H=AX+D.lanes.length*LH+4;cv.width=W*r;cv.height=H*r;cv.style.width=W+'px';cv.style.height=H+'px';ctx.setTransform(r,0,0,r,0,0);draw()}
function draw(){
 ctx.clearRect(0,0,W,H);ctx.font='11px sans-serif';ctx.textBaseline='middle';
 for(let l=0;l<D.lanes.length;l++){if(l%2){ctx.fillStyle='#f6f6f6';ctx.fillRect(G,AX+l*LH,W-G,LH)}}
 ctx.fillStyle='rgba(255,140,0,.18)';
 for(const f of D.faults){const a=Math.max(G,X(f[0])),b=Math.min(W,X(f[1]));if(b>a)ctx.fillRect(a,AX,Math.max(1,b-a),H-AX)}
 ctx.strokeStyle='rgba(200,100,0,.7)';
 for(const m of D.marks){const x=X(m[0]);if(x>=G&&x<=W){ctx.beginPath();ctx.moveTo(x,AX);ctx.lineTo(x,H);ctx.stroke()}}
 const flagged=[];
 for(let l=0;l<D.lanes.length;l++){
  let lastPx=-1,lastPri=-1;const y=AX+l*LH+1,h=LH-2;
  for(const i of byLane[l]){const o=D.ops[i];let a=X(o[1]),b=X(end(o));if(b<G||a>W)continue;a=Math.max(a,G);b=Math.min(b,W);
   if(o[7]){flagged.push(i);continue}
   const w=b-a,px=Math.floor(a),p=PRI[o[3]];
   if(w<2){if(px===lastPx&&p<=lastPri)continue;lastPx=px;lastPri=p}else{lastPx=-1;lastPri=-1}
   ctx.fillStyle=COL[o[3]];ctx.fillRect(a,y,Math.max(1,w),h);
   if(w>40&&h>=10){ctx.fillStyle='#333';ctx.fillText(o[4],a+2,y+h/2,w-4)}}}
 for(const i of flagged){const o=D.ops[i],y=AX+o[0]*LH+1,h=LH-2;const a=Math.max(X(o[1]),G),b=Math.min(X(end(o)),W);
  ctx.fillStyle=COL[o[3]];ctx.fillRect(a,y,Math.max(2,b-a),h);ctx.strokeStyle='#d00';ctx.lineWidth=2;ctx.strokeRect(a-1,y,Math.max(3,b-a+2),h);ctx.lineWidth=1}
 ctx.fillStyle='#fff';ctx.fillRect(0,0,G,H);ctx.fillRect(0,0,W,AX);ctx.fillStyle='#333';
 for(let l=0;l<D.lanes.length;l++){if(LH>=10||l%5==0)ctx.fillText('p '+D.lanes[l],4,AX+l*LH+LH/2,G-8)}
 const step=Math.pow(10,Math.floor(Math.log10((v1-v0)/6)));let s=step*(((v1-v0)/6/step)>5?5:((v1-v0)/6/step)>2?2:1);
 ctx.strokeStyle='#ccc';ctx.textAlign='center';
 for(let t=Math.ceil(v0/s)*s;t<=v1;t+=s){const x=X(t);ctx.beginPath();ctx.moveTo(x,AX-4);ctx.lineTo(x,AX);ctx.stroke();ctx.fillText(fmt(t),x,AX/2)}
 ctx.textAlign='left';
 document.getElementById('range').textContent='showing '+fmt(v0)+' – '+fmt(v1)+' of '+fmt(D.span)+', '+D.ops.length+' operations';
}
function hit(ev){const r=cv.getBoundingClientRect(),x=ev.clientX-r.left,y=ev.clientY-r.top;const l=Math.floor((y-AX)/LH);if(l<0||l>=D.lanes.length||x<G)return null;
 const t=T(x),tol=3*(v1-v0)/(W-G);let best=null;
 for(const i of byLane[l]){const o=D.ops[i];if(o[1]-tol<=t&&end(o)+tol>=t){if(best===null||o[7]>D.ops[best][7])best=i}}return best}
let drag=null;
cv.addEventListener('mousedown',e=>{drag={x:e.clientX,v0,v1};cv.style.cursor='grabbing'});
window.addEventListener('mouseup',()=>{drag=null;cv.style.cursor='grab'});
window.addEventListener('mousemove',e=>{if(drag){const d=(e.clientX-drag.x)/(W-G)*(drag.v1-drag.v0);v0=drag.v0-d;v1=drag.v1-d;draw();return}
 if(e.target!==cv){tip.style.display='none';return}
 const i=hit(e);if(i===null){tip.style.display='none';return}const o=D.ops[i];
 tip.textContent='process '+D.lanes[o[0]]+'  '+o[4]+'  '+['ok','fail','info','pending'][o[3]]+(o[9]?'  node '+o[9]:'')+'\n'+fmt(o[1])+' → '+(o[2]<0?'…':fmt(o[2])+'  ('+fmt(o[2]-o[1])+')')+'\ninvoke: '+o[5]+(o[6]?'\nresult: '+o[6]:'')+wall(o[10])+'\nevent #'+o[8]+(o[7]?'\n⚠ named by the evidence':'');
 tip.style.display='block';tip.style.left=Math.min(e.clientX+14,window.innerWidth-540)+'px';tip.style.top=(e.clientY+14)+'px'});
cv.addEventListener('wheel',e=>{e.preventDefault();const r=cv.getBoundingClientRect(),t=T(e.clientX-r.left),k=Math.exp(e.deltaY*0.002);
 let w=Math.max(1e3,(v1-v0)*k);v0=t-(t-v0)*w/(v1-v0);v1=v0+w;draw()},{passive:false});
cv.addEventListener('dblclick',()=>{v0=0;v1=D.span;draw()});
function focus(ops){if(!ops.length)return;let a=Infinity,b=-Infinity;for(const i of ops){const o=D.ops[i];a=Math.min(a,o[1]);b=Math.max(b,end(o))}
 const m=Math.max((b-a)*0.3,1e3);v0=a-m;v1=b+m;draw();const o=D.ops[ops[0]];wrap.scrollTop=Math.max(0,AX+o[0]*LH-60)}
const ol=document.getElementById('ev');
D.evidence.forEach(ev=>{const li=document.createElement('li');li.textContent=ev.p+': '+ev.note;li.onclick=()=>focus(ev.ops);ol.appendChild(li)});
if(!D.evidence.length)ol.outerHTML='<p class="muted">No violations.</p>';
document.getElementById('note').textContent=(D.hidden?D.hidden+' log entries read back after the run are not drawn (they have no time of their own). ':'')+(D.wall_contradictions?D.wall_contradictions+' event(s) carry a wall-clock interval certainly earlier than an event recorded before them: a clock was off by more than the bound it claimed (a jump?); the first: process '+D.wall_first[2]+' at '+fmt(D.wall_first[3])+' against process '+D.wall_first[0]+' at '+fmt(D.wall_first[1])+'. Nothing here decides by wall time.':'');
window.addEventListener('resize',size);size();
</script></body></html>
"##;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkers::check_all;
    use crate::testgen::{generate, GenOptions};
    use crate::verdict::Options;

    #[test]
    fn self_contained_and_escaped() {
        let mut h = generate(&GenOptions { ops: 10_000, clients: 20, ..GenOptions::default() });
        // A hostile value must not end the script.
        h.events[0].value = json!({"lock": "</script><b>x</b>"});
        let verdicts = check_all(&h, &Options::default());
        let html = render_html(&h, &verdicts);
        assert_eq!(html.matches("</script>").count(), 1);
        assert!(!html.contains("http://") && !html.contains("https://") && !html.contains("src="));
        assert!(html.contains("uniqueness of tokens"));
        // 10k operations stay a reasonable size.
        assert!(html.len() < 5_000_000, "{} bytes", html.len());
    }

    #[test]
    fn evidence_is_marked() {
        let text = include_str!("../../testdata/fig-8-4-unfenced.jsonl");
        let h = History::parse_jsonl(text).expect("parses");
        let verdicts = check_all(&h, &Options::default());
        let data = timeline_data(&h, &verdicts);
        let marked: Vec<&Value> = data["ops"].as_array().into_iter().flatten().filter(|o| o[7] == json!(1)).collect();
        assert!(marked.len() >= 2, "{data}");
        assert_eq!(data["faults"].as_array().map(Vec::len), Some(1));
    }

    #[test]
    fn wall_bounds_reach_the_event_details() {
        let text = concat!(
            "{\"type\":\"invoke\",\"process\":0,\"f\":\"acquire\",\"value\":{\"lock\":\"a\"},\"time\":1,\"wall\":[1000,1020,true]}\n",
            "{\"type\":\"ok\",\"process\":0,\"f\":\"acquire\",\"value\":{\"lock\":\"a\",\"token\":3},\"time\":5,\"wall\":[1004,1024,true]}\n",
            "{\"type\":\"info\",\"process\":\"clock\",\"f\":\"jump\",\"value\":{\"jump_ms\":-60000},\"time\":6,\"node\":\"n1\",\"wall\":[1,21,true]}\n",
        );
        let h = History::parse_jsonl(text).expect("parses");
        let data = timeline_data(&h, &[]);
        assert_eq!(data["ops"][0][10], json!([[1000, 1020, true], [1004, 1024, true]]));
        assert_eq!(data["ops"][1][10], json!([[1, 21, true], null]), "a standalone event has one reading");
        assert_eq!(data["wall_contradictions"], json!(1), "the jump back shows");
        assert_eq!(data["wall_first"], json!(["0", 4, "\"clock\"", 5]));
        assert!(render_html(&h, &[]).contains("wall at completion"));
    }
}
