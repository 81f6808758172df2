// The review page: a decision per card through POST /jobs/{id}/reviews (buttons, class picker, keys).
(() => {
  const data = JSON.parse(document.getElementById('review-data').textContent);
  const cards = [...document.querySelectorAll('.card[data-example]')];
  const status = document.getElementById('status');
  const ACTIONS = ['relabel', 'keep', 'exclude'];

  function say(text, bad) {
    status.textContent = text;
    status.className = bad ? 'err' : '';
  }

  function show(card, action, label) {  // what the server renders after a reload, drawn now
    card.dataset.decision = action || '';
    for (const a of ACTIONS) card.classList.toggle('d-' + a, a === action);
    card.querySelector('.decision').textContent =
      action === 'relabel' ? 'relabel → ' + label : (action || 'undecided');
    card.querySelector('[data-action=undo]').disabled = !action;
    card.querySelector('.relabel').value = action === 'relabel' ? label : '';
  }

  async function decide(card, action, label) {
    const id = +card.dataset.example, decision = {example_id: id, action: action};
    if (action === 'relabel') decision.label = label;
    card.classList.add('busy');
    try {
      const r = await fetch('/jobs/' + encodeURIComponent(data.job_id) + '/reviews', {
        method: 'POST', headers: {'Content-Type': 'application/json'},
        body: JSON.stringify({decisions: [decision]})});
      const j = await r.json();
      if (!r.ok) {
        say('#' + id + ' not saved: ' + j.error.message, true);
        return false;
      }
      show(card, action === 'clear' ? null : action, label);
      for (const a of ACTIONS) document.querySelector('[data-count=' + a + ']').textContent = j.counts[a];
      say('#' + id + ': ' + (action === 'clear' ? 'decision cleared' :
                             action === 'relabel' ? 'relabel → ' + label : action) + ' (saved)');
      return true;
    } catch (e) {
      say('#' + id + ' not saved: ' + e, true);
      return false;
    } finally {
      card.classList.remove('busy');
    }
  }

  function act(card, what, label) {  // accept | keep | exclude | undo | relabel
    if (what === 'accept') return decide(card, 'relabel', card.dataset.suggested);
    if (what === 'undo') return decide(card, 'clear');
    if (what === 'relabel') {
      if (label === card.dataset.given) return decide(card, 'keep');  // "it is what it says": keep
      return decide(card, 'relabel', label);
    }
    return decide(card, what);
  }

  function columns() {
    const top = cards[0].offsetTop;
    const n = cards.findIndex((c) => c.offsetTop !== top);
    return n < 0 ? cards.length : n;
  }

  function focusAt(i) {
    const card = cards[Math.max(0, Math.min(cards.length - 1, i))];
    card.focus({preventScroll: true});
    card.scrollIntoView({block: 'nearest'});
  }

  document.querySelector('.cards').addEventListener('click', (ev) => {
    const button = ev.target.closest('button[data-action]');
    if (button) act(button.closest('.card'), button.dataset.action);
  });
  document.querySelector('.cards').addEventListener('change', (ev) => {
    const picker = ev.target.closest('.relabel');
    if (!picker || !picker.value) return;
    if (!data.classes.includes(picker.value)) {
      say(picker.value + ' is not a class of this dataset', true);
      return;
    }
    act(picker.closest('.card'), 'relabel', picker.value);
  });

  const MOVES = new Set(['ArrowLeft', 'ArrowRight', 'ArrowUp', 'ArrowDown']);
  document.addEventListener('keydown', (ev) => {
    if (ev.ctrlKey || ev.metaKey || ev.altKey || !cards.length) return;
    if (ev.target.closest('input, select, textarea')) return;  // typing in a field or the picker
    const card = ev.target.closest('.card[data-example]');
    const i = card ? cards.indexOf(card) : -1;
    if (MOVES.has(ev.key)) {
      ev.preventDefault();
      if (i < 0) return focusAt(0);
      const step = ev.key === 'ArrowLeft' ? -1 : ev.key === 'ArrowRight' ? 1 :
                   (ev.key === 'ArrowUp' ? -1 : 1) * columns();
      return focusAt(i + step);
    }
    if (!card) return;
    let done = null;
    if (ev.key === 'a') done = act(card, 'accept');
    else if (ev.key === 'k') done = act(card, 'keep');
    else if (ev.key === 'x') done = act(card, 'exclude');
    else if (ev.key === 'u') { ev.preventDefault(); act(card, 'undo'); return; }
    else if (data.digit_keys && /^[0-9]$/.test(ev.key) && +ev.key < data.classes.length) {
      done = act(card, 'relabel', data.classes[+ev.key]);
    }
    if (done === null) return;
    ev.preventDefault();
    if (i + 1 < cards.length) focusAt(i + 1);  // on to the next card at once; the status line says if it failed
  });

  // the filter form applies itself when a select changes
  const filters = document.querySelector('form.filters');
  filters.addEventListener('change', () => {
    for (const el of filters.elements) if (el.name && !el.value) el.disabled = true;  // no empty parameters
    filters.submit();
  });
})();
