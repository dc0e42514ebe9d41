"""Checks run inside the page: horizontal overflow; the sticky header (its parts fit, do not
overlap each other, and nothing is drawn over them, before or after scrolling); every post form
carries its CSRF token; no inline scripts or handlers (the CSP refuses them)."""

from __future__ import annotations

LAYOUT_PROBLEMS = r"""
() => {
  const problems = [];
  const vw = window.innerWidth;
  const label = e => e.tagName.toLowerCase()
    + (e.className ? '.' + String(e.className).trim().split(/\s+/).join('.') : '');
  const overflow = document.documentElement.scrollWidth - vw;
  if (overflow > 0) {
    // Name the culprits so a failure says where to look.
    const wide = [...document.querySelectorAll('body *')]
      .filter(e => e.getBoundingClientRect().right > vw + 0.5 && !e.closest('.table-wrap'))
      .slice(0, 3).map(label);
    problems.push(`horizontal overflow of ${overflow}px (${wide.join(', ')})`);
  }
  for (const form of document.querySelectorAll('form[method=post i]')) {
    const token = form.querySelector('input[name=csrf_token]');
    if (!token || !token.value) {
      problems.push(`form posting to ${form.getAttribute('action')} carries no CSRF token`);
    }
  }
  const inline = 'script:not([src]), [onclick], [onsubmit], [onchange], [oninput], [onload]';
  if (document.querySelector(inline)) {
    problems.push('inline script or event handler (refused by the Content-Security-Policy)');
  }
  const header = document.querySelector('body > header');
  if (!header) { problems.push('no page header'); return problems; }
  const partsSelector = ':scope > .brand, :scope > .scanbox, :scope > .menu, :scope > .lang-links';
  const checkHeader = (when) => {
    const hr = header.getBoundingClientRect();
    const parts = [...header.querySelectorAll(partsSelector)]
      .filter(e => e.getClientRects().length > 0);
    const rects = parts.map(e => e.getBoundingClientRect());
    const say = (part, what) => problems.push(`${when}: header ${label(part)} ${what}`);
    parts.forEach((part, i) => {
      const r = rects[i];
      if (r.left < -0.5 || r.right > vw + 0.5) say(part, 'sticks out of the viewport');
      if (r.top < hr.top - 0.5 || r.bottom > hr.bottom + 0.5) say(part, 'spills out of the header');
      const x = Math.min(Math.max(r.left + r.width / 2, 0), vw - 1);
      const hit = document.elementFromPoint(x, r.top + r.height / 2);
      if (hit && !part.contains(hit)) say(part, `is covered by ${label(hit)}`);
      for (let j = 0; j < i; j++) {
        const o = rects[j];
        const w = Math.min(r.right, o.right) - Math.max(r.left, o.left);
        const h = Math.min(r.bottom, o.bottom) - Math.max(r.top, o.top);
        if (w > 1 && h > 1) say(part, `overlaps ${label(parts[j])}`);
      }
    });
    return hr;
  };
  window.scrollTo(0, 0);
  const hr = checkHeader('at top');
  const first = [...document.querySelectorAll('main > *')]
    .find(e => e.getClientRects().length > 0 && e.getBoundingClientRect().height > 0);
  if (first && first.getBoundingClientRect().top < hr.bottom - 1) {
    problems.push('the header covers the start of the page');
  }
  const room = document.documentElement.scrollHeight - window.innerHeight;
  if (room > 120) {
    window.scrollTo(0, Math.min(300, room));
    if (Math.abs(header.getBoundingClientRect().top) > 0.5) {
      problems.push('the header does not stay at the top when scrolling');
    }
    checkHeader('scrolled');
    window.scrollTo(0, 0);
  }
  return problems;
}
"""

MENU_PROBLEMS = r"""
() => {
  const problems = [];
  const nav = document.querySelector('details.menu[open] nav');
  if (!nav) return ['the menu did not open'];
  const r = nav.getBoundingClientRect();
  if (r.left < -0.5 || r.right > window.innerWidth + 0.5) {
    problems.push('the open menu sticks out of the viewport');
  }
  for (const el of nav.querySelectorAll('a, button')) {
    if (el.getClientRects().length === 0) continue;  // section links live in the sidebar on a desk
    el.scrollIntoView({block: 'nearest'});  // a long menu scrolls inside itself: each item must be reachable
    const b = el.getBoundingClientRect();
    const name = el.textContent.trim();
    const hit = document.elementFromPoint(b.left + b.width / 2, b.top + b.height / 2);
    if (!hit || !el.contains(hit)) problems.push(`menu item "${name}" is covered`);
    if (b.height < 24) problems.push(`menu item "${name}" is only ${b.height}px tall`);
  }
  return problems;
}
"""


def layout_problems(page) -> list[str]:
    return page.evaluate(LAYOUT_PROBLEMS)


def menu_problems(page) -> list[str]:
    return page.evaluate(MENU_PROBLEMS)
