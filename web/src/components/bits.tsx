// Small shared pieces: fill bars, state badges, tabs, fields.

import type { ComponentChildren } from 'preact';
import { useRef } from 'preact/hooks';
import type { VmState } from '../api/types';
import { t, num, type Key } from '../i18n';

/** A fill bar. `level` colours it; the figure is also written next to it (colour is
 * never the only signal). */
export function Bar(props: { value: number; label: string; text?: string; level?: 'ok' | 'warning' | 'critical' }) {
  const v = Math.max(0, Math.min(100, props.value));
  const level = props.level ?? (v >= 90 ? 'critical' : v >= 75 ? 'warning' : 'ok');
  return (
    <div class="bar-wrap">
      <div
        class={`bar ${level}`}
        role="meter"
        aria-label={props.label}
        aria-valuemin={0}
        aria-valuemax={100}
        aria-valuenow={Math.round(v)}
        aria-valuetext={props.text ?? `${num(v)} %`}
      >
        <div class="bar-fill" style={{ width: `${v}%` }} />
      </div>
      <span class="bar-text">{props.text ?? `${num(v)} %`}</span>
    </div>
  );
}

export function StateBadge({ state, suspended, available }: { state: VmState; suspended?: boolean; available?: boolean }) {
  const label = t(`state.${state}` as Key);
  return (
    <span class={`state state-${state}${available === false ? ' unavailable' : ''}`} data-state={state}>
      <span class="dot" aria-hidden="true" />
      {label}
      {suspended && <span class="tag">{t('state.suspended')}</span>}
      {available === false && <span class="tag">{t('state.host_unavailable')}</span>}
    </span>
  );
}

/** Accessible tabs (arrow keys move between them). The panels are links' targets, so
 * tabs are links: reload and back work. */
export function Tabs(props: { tabs: { id: string; label: string; href: string }[]; current: string; onSelect: (id: string, href: string) => void }) {
  const refs = useRef<(HTMLAnchorElement | null)[]>([]);
  const idx = props.tabs.findIndex((x) => x.id === props.current);
  const onKey = (e: KeyboardEvent) => {
    let n = idx;
    if (e.key === 'ArrowRight') n = (idx + 1) % props.tabs.length;
    else if (e.key === 'ArrowLeft') n = (idx - 1 + props.tabs.length) % props.tabs.length;
    else if (e.key === 'Home') n = 0;
    else if (e.key === 'End') n = props.tabs.length - 1;
    else return;
    e.preventDefault();
    props.onSelect(props.tabs[n].id, props.tabs[n].href);
    refs.current[n]?.focus();
  };
  return (
    <div class="tabs" role="tablist" onKeyDown={onKey}>
      {props.tabs.map((x, i) => (
        <a
          ref={(el) => {
            refs.current[i] = el;
          }}
          role="tab"
          id={`tab-${x.id}`}
          href={x.href}
          aria-selected={x.id === props.current}
          aria-controls={`panel-${x.id}`}
          tabIndex={x.id === props.current ? 0 : -1}
          onClick={(e) => {
            if (e.button !== 0 || e.ctrlKey || e.metaKey) return;
            e.preventDefault();
            props.onSelect(x.id, x.href);
          }}
        >
          {x.label}
        </a>
      ))}
    </div>
  );
}

let fieldSeq = 0;
/** A labelled form field; `hint` and `next` (the next-start marker) are tied to the input
 * with aria-describedby. */
export function Field(props: { label: string; hint?: ComponentChildren; next?: ComponentChildren; children: (id: string, describedBy?: string) => ComponentChildren }) {
  const id = useRef(`f${++fieldSeq}`).current;
  const described = props.hint || props.next ? `${id}-d` : undefined;
  return (
    <div class="field">
      <label for={id}>{props.label}</label>
      {props.children(id, described)}
      {(props.hint || props.next) && (
        <div class="field-hint" id={described}>
          {props.next && <span class="next-boot">{props.next}</span>}
          {props.hint}
        </div>
      )}
    </div>
  );
}
