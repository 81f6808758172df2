// "re-score" (the spec of the job the version came from) or "start job": POST /jobs, then its page
(() => {
  const data = JSON.parse(document.getElementById('dataset-data').textContent);
  const out = document.getElementById('score-status');

  async function submit(spec, adaboost, button) {
    button.disabled = true;
    out.textContent = 'submitting…';
    const body = {dataset_id: data.dataset_id, spec: spec};
    if (adaboost) body.adaboost = adaboost;
    try {
      const r = await fetch('/jobs', {method: 'POST', headers: {'Content-Type': 'application/json'},
                                      body: JSON.stringify(body)});
      const j = await r.json();
      if (r.ok) { location.href = '/ui/jobs/' + encodeURIComponent(j.job_id); return; }
      out.textContent = 'not started: ' + j.error.message;
    } catch (e) {
      out.textContent = 'not started: ' + e;
    }
    out.className = 'err';
    button.disabled = false;
  }

  const rescore = document.getElementById('rescore');
  if (rescore) rescore.addEventListener('click', () => submit(data.spec, data.adaboost, rescore));
  const start = document.getElementById('start');
  if (start) start.addEventListener('submit', (ev) => {
    ev.preventDefault();
    submit({n_members: +start.elements.n_members.value, n_epochs: +start.elements.n_epochs.value}, null,
           start.querySelector('button'));
  });
})();
