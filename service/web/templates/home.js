// the upload form (POST /datasets, then reload) and each dataset's start-job form (POST /jobs, then its page)
document.getElementById('upload').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const form = ev.target, status = document.getElementById('upload-status');
  const data = new FormData(), query = new URLSearchParams();
  data.append('file', form.elements.file.files[0]);
  for (const key of ['name', 'label_column', 'resize', 'text_column', 'features']) {
    const value = form.elements[key].value.trim();
    if (value) query.set(key, value);
  }
  if (form.elements.embedder.value !== 'auto') query.set('embedder', form.elements.embedder.value);
  if (form.elements.skip_unreadable.checked) query.set('skip_unreadable', 'true');
  for (const key of ['categorical', 'ignore']) {  // "a, b" -> ?key=a&key=b
    for (const col of form.elements[key].value.split(',').map((c) => c.trim()).filter(Boolean)) query.append(key, col);
  }
  status.textContent = 'uploading…';
  const r = await fetch('/datasets' + (query.toString() ? '?' + query : ''), {method: 'POST', body: data});
  const j = await r.json();
  if (r.ok) { location.reload(); } else { status.textContent = 'error: ' + j.error.message; }
});
for (const form of document.querySelectorAll('form.start')) {
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const spec = {n_members: +form.elements.n_members.value, n_epochs: +form.elements.n_epochs.value};
    const r = await fetch('/jobs', {method: 'POST', headers: {'Content-Type': 'application/json'},
                                    body: JSON.stringify({dataset_id: form.dataset.dataset, spec: spec})});
    const j = await r.json();
    if (r.ok) { location.href = '/ui/jobs/' + j.job_id; } else { alert(j.error.message); }
  });
}
