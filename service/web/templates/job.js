// a running job's live progress (GET /jobs/{id}/events, reload at its end) and its cancel button (DELETE /jobs/{id})
const box = document.getElementById('live'), id = box.dataset.job;
const text = document.getElementById('progress-text'), bar = document.getElementById('progress-bar');
const es = new EventSource('/jobs/' + id + '/events');
es.addEventListener('progress', (ev) => {
  const j = JSON.parse(ev.data);
  bar.value = j.progress;
  if (j.estimated_seconds != null) {
    let est = document.getElementById('estimate');
    if (!est) { est = document.createElement('p'); est.id = 'estimate'; box.before(est); }
    est.textContent = 'Estimated training time: about ' + Math.round(j.estimated_seconds) + ' s (' + j.estimate_note + ')';
  }
  text.textContent = j.status + ': ' + j.epochs_done + '/' + j.epochs_total + ' epochs' +
    (j.eta_seconds != null ? ', about ' + Math.round(j.eta_seconds) + ' s left' : '') + (j.error ? ' ' + j.error : '');
});
es.addEventListener('end', () => { es.close(); location.reload(); });
document.getElementById('cancel').addEventListener('click', async () => {
  const r = await fetch('/jobs/' + id, {method: 'DELETE'});
  text.textContent = (await r.json()).status;
});
