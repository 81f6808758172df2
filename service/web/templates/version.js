// "create corrected version": POST /datasets/{id}/versions {"from_job"}, then the new version's page
for (const button of document.querySelectorAll('button.make-version')) {
  button.addEventListener('click', async () => {
    const out = document.getElementById(button.dataset.status) || button.nextElementSibling;
    button.disabled = true;
    out.textContent = 'creating the corrected version…';
    try {
      const r = await fetch('/datasets/' + encodeURIComponent(button.dataset.dataset) + '/versions', {
        method: 'POST', headers: {'Content-Type': 'application/json'},
        body: JSON.stringify({from_job: button.dataset.job})});
      const j = await r.json();
      if (r.ok) { location.href = '/ui/datasets/' + encodeURIComponent(j.dataset_id); return; }
      out.textContent = 'not created: ' + j.error.message;
      out.className = 'err';
    } catch (e) {
      out.textContent = 'not created: ' + e;
      out.className = 'err';
    }
    button.disabled = false;
  });
}
