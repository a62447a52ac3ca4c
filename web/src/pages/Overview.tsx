// The overview: hosts (availability, CPU and memory bars, VM counts) as a tree to filter
// by, and one grid of the VMs of every host.
//
// The grid is built for 10,000 VMs: the server filters, sorts and pages
// (`GET /api/v1/vms?q=&state=&host=&sort=&offset=&limit=`), the browser renders only the
// rows in view (virtual scrolling) and asks for the pages of 100 rows those need. Typing
// a search cancels the request of the previous keystroke. Events patch the rows they carry
// in place, and reload the rows in view where the set or the order may have changed.

import { memo } from 'preact/compat';
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { api, ApiError } from '../api/client';
import { VM_STATES, type HostSummary, type VmPage, type VmSummary, type UvmmEvent } from '../api/types';
import { actionLabel, allowed, hasConsole, QUICK, runAction } from '../actions';
import { Bar, StateBadge } from '../components/bits';
import { toastError } from '../components/feedback';
import { t, num, type Key, tn } from '../i18n';
import { kib, percent } from '../format';
import { hosts as hostStore, throttle, useEvents, useResync } from '../live';
import { onLinkClick, vmPath } from '../router';
import { can, vmTarget } from '../session';
import { useStore } from '../store';

const PAGE = 100;

interface Query {
  q: string;
  state: string;
  host: string;
  sort: string;
}

function readQuery(): Query {
  const p = new URLSearchParams(location.search);
  return { q: p.get('q') ?? '', state: p.get('state') ?? '', host: p.get('host') ?? '', sort: p.get('sort') ?? 'name' };
}

function writeQuery(q: Query) {
  const p = new URLSearchParams();
  if (q.q) p.set('q', q.q);
  if (q.state) p.set('state', q.state);
  if (q.host) p.set('host', q.host);
  if (q.sort && q.sort !== 'name') p.set('sort', q.sort);
  const s = p.toString();
  // replaceState: filtering is not a step back should undo one keystroke at a time.
  history.replaceState(null, '', s ? `/?${s}` : '/');
}

export function Overview() {
  const [query, setQuery] = useState<Query>(readQuery);
  const [searchText, setSearchText] = useState(query.q);
  const hostList = useStore(hostStore);

  // Typing is applied after a short pause; every keystroke restarts the pause.
  useEffect(() => {
    if (searchText === query.q) return;
    const id = setTimeout(() => setQuery((q) => ({ ...q, q: searchText })), 120);
    return () => clearTimeout(id);
  }, [searchText]);
  useEffect(() => writeQuery(query), [query]);

  const set = (patch: Partial<Query>) => setQuery((q) => ({ ...q, ...patch }));

  return (
    <div class="overview">
      <aside class="hosts-panel" aria-labelledby="hosts-heading">
        <h2 id="hosts-heading">{t('hosts.title')}</h2>
        <HostTree hosts={hostList} selected={query.host} onSelect={(h) => set({ host: h })} />
      </aside>
      <section class="vms-panel" aria-labelledby="vms-heading">
        <div class="panel-head">
          <h1 id="vms-heading">{t('vms.title')}</h1>
          {can('create') && (
            <a class="button primary" href="/create" onClick={onLinkClick}>
              {t('vms.new')}
            </a>
          )}
        </div>
        <div class="toolbar" role="search">
          <div class="field inline grow">
            <label for="vm-search">{t('vms.search')}</label>
            <input
              id="vm-search"
              type="search"
              placeholder={t('vms.search_placeholder')}
              value={searchText}
              onInput={(e) => setSearchText((e.currentTarget as HTMLInputElement).value)}
              aria-describedby="vm-search-hint"
            />
            <span id="vm-search-hint" class="visually-hidden">
              {t('vms.search_hint')}
            </span>
          </div>
          <div class="field inline">
            <label for="vm-state">{t('vms.state')}</label>
            <select id="vm-state" value={query.state} onChange={(e) => set({ state: (e.currentTarget as HTMLSelectElement).value })}>
              <option value="">{t('vms.all_states')}</option>
              {VM_STATES.map((s) => (
                <option value={s}>{t(`state.${s}` as Key)}</option>
              ))}
            </select>
          </div>
          <div class="field inline">
            <label for="vm-host">{t('vms.host')}</label>
            <select id="vm-host" value={query.host} onChange={(e) => set({ host: (e.currentTarget as HTMLSelectElement).value })}>
              <option value="">{t('vms.all_hosts')}</option>
              {(hostList ?? []).map((h) => (
                <option value={h.id}>{h.id}</option>
              ))}
            </select>
          </div>
        </div>
        <VmGrid query={query} onSort={(sort) => set({ sort })} />
      </section>
    </div>
  );
}

function HostTree(props: { hosts: HostSummary[] | null; selected: string; onSelect: (id: string) => void }) {
  if (!props.hosts) return <p class="muted">{t('common.loading')}</p>;
  const totalVms = props.hosts.reduce((n, h) => n + h.vm_count, 0);
  const running = props.hosts.reduce((n, h) => n + h.running_count, 0);
  return (
    <ul class="host-tree" aria-label={t('hosts.tree')}>
      <li>
        <button type="button" class="tree-root" aria-pressed={props.selected === ''} onClick={() => props.onSelect('')}>
          <span>{t('hosts.all')}</span>
          <span class="muted">{t('hosts.vm_counts', { running, total: totalVms })}</span>
        </button>
        <ul>
          {props.hosts.map((h) => (
            <li key={h.id}>
              <HostCard host={h} selected={props.selected === h.id} onSelect={() => props.onSelect(props.selected === h.id ? '' : h.id)} />
            </li>
          ))}
        </ul>
      </li>
    </ul>
  );
}

function HostCard({ host: h, selected, onSelect }: { host: HostSummary; selected: boolean; onSelect: () => void }) {
  const memTotal = h.memory_kib ?? 0;
  // Real use where libvirt reports free memory; else what the running VMs were given.
  const memUsed = h.free_memory_kib != null ? memTotal - h.free_memory_kib : h.running_memory_kib ?? 0;
  const cpu = h.cpu_usage ?? 0;
  return (
    <div class={`host-card status-${h.status}${selected ? ' selected' : ''}`} data-host={h.id} data-status={h.status}>
      <button type="button" class="host-select" aria-pressed={selected} onClick={onSelect}>
        <span class="host-name">{h.id}</span>
        <span class={`host-status ${h.status}`}>{t(`hosts.status.${h.status}` as Key)}</span>
      </button>
      <div class="host-figures">
        <div class="muted">{t('hosts.vm_counts', { running: h.running_count, total: h.vm_count })}</div>
        {h.available ? (
          <>
            <div class="fig">
              <span class="fig-label">{t('hosts.cpu')}</span>
              <Bar
                value={cpu}
                label={t('hosts.cpu_of', { host: h.id })}
                text={`${num(cpu)} %`}
              />
              <span class="fig-sub">{t('hosts.vcpus_of', { used: h.running_vcpus ?? 0, total: h.cpus ?? 0 })}</span>
            </div>
            <div class="fig">
              <span class="fig-label">{t('hosts.memory')}</span>
              <Bar
                value={percent(memUsed, memTotal)}
                label={t('hosts.memory_of', { host: h.id })}
                text={`${kib(memUsed)} / ${kib(memTotal)}`}
              />
            </div>
          </>
        ) : (
          <p class="host-error">
            {h.last_error && <span class="server-text">{h.last_error}</span>}
            {h.retry_in_secs != null && <span> {t('hosts.retry_in', { secs: h.retry_in_secs })}</span>}
          </p>
        )}
      </div>
    </div>
  );
}

/** Row height in pixels: one line, or two in a narrow window (see styles.css). */
function useRowHeight(): number {
  const mq = useMemo(() => window.matchMedia('(max-width: 760px)'), []);
  const [narrow, setNarrow] = useState(mq.matches);
  useEffect(() => {
    const f = () => setNarrow(mq.matches);
    mq.addEventListener('change', f);
    return () => mq.removeEventListener('change', f);
  }, [mq]);
  return narrow ? 76 : 44;
}

const SORTS: { key: string; label: Key; cls: string }[] = [
  { key: 'state', label: 'grid.state', cls: 'c-state' },
  { key: 'name', label: 'grid.name', cls: 'c-name' },
  { key: 'host', label: 'grid.host', cls: 'c-host' },
  { key: 'cpu', label: 'grid.cpu', cls: 'c-cpu' },
  { key: 'memory', label: 'grid.memory', cls: 'c-mem' },
];

function VmGrid({ query, onSort }: { query: Query; onSort: (s: string) => void }) {
  const ROW = useRowHeight();
  const scroller = useRef<HTMLDivElement>(null);
  const pages = useRef(new Map<number, VmSummary[]>());
  const gen = useRef(0);
  const inflight = useRef(new Map<number, AbortController>());
  const [total, setTotal] = useState<number | null>(null);
  const [shownQuery, setShownQuery] = useState<string>('');
  const [, setVersion] = useState(0);
  const [scrollTop, setScrollTop] = useState(0);
  const [viewH, setViewH] = useState(600);
  const bump = () => setVersion((v) => v + 1);
  const queryKey = JSON.stringify(query);

  const params = (p: number) => ({
    q: query.q,
    state: query.state,
    host: query.host,
    sort: query.sort,
    offset: p * PAGE,
    limit: PAGE,
  });

  const visiblePages = (top = scrollTop, height = viewH): number[] => {
    const first = Math.floor(top / ROW);
    const last = Math.ceil((top + height) / ROW);
    const out: number[] = [];
    for (let p = Math.floor(first / PAGE); p <= Math.floor(last / PAGE); p++) out.push(p);
    return out;
  };

  /** Fetch pages `ps` for generation `g`; `replace`: the result replaces all pages. */
  const fetchPages = async (ps: number[], g: number, replace: boolean) => {
    const got = new Map<number, VmSummary[]>();
    let newTotal: number | null = null;
    try {
      await Promise.all(
        ps.map(async (p) => {
          inflight.current.get(p)?.abort();
          const ctl = new AbortController();
          inflight.current.set(p, ctl);
          const r = await api.get<VmPage>('/vms', { query: params(p), signal: ctl.signal });
          if (inflight.current.get(p) === ctl) inflight.current.delete(p);
          got.set(p, r.items);
          newTotal = r.total;
        }),
      );
    } catch (e) {
      // A lost connection is shown in the header and heals by itself (resync).
      const lost = e instanceof ApiError && e.code === 'network';
      if (!lost && !(e instanceof DOMException && e.name === 'AbortError')) toastError(e);
      return;
    }
    if (g !== gen.current) return;
    if (replace) pages.current = got;
    else got.forEach((v, k) => pages.current.set(k, v));
    if (newTotal !== null) setTotal(newTotal);
    setShownQuery(queryKey);
    bump();
  };

  // A new query: start over at the top; the old rows stay until the new ones arrive.
  useEffect(() => {
    const g = ++gen.current;
    inflight.current.forEach((c) => c.abort());
    inflight.current.clear();
    if (scroller.current) scroller.current.scrollTop = 0;
    setScrollTop(0);
    void fetchPages([0], g, true);
  }, [queryKey]);

  // Pages the view needs that are not loaded yet.
  useEffect(() => {
    const missing = visiblePages().filter((p) => !pages.current.has(p) && !inflight.current.has(p));
    if (missing.length && total !== null && missing[0] * PAGE < total) void fetchPages(missing, gen.current, false);
  });

  // Reload the rows in view (the set or the order may have changed); keeps the scroll.
  const reload = useMemo(
    () =>
      throttle(() => {
        const g = ++gen.current;
        void fetchPages(visiblePages(scroller.current?.scrollTop ?? 0, scroller.current?.clientHeight ?? 600), g, true);
      }, 150),
    [queryKey, ROW],
  );
  const reloadRef = useRef(reload);
  reloadRef.current = reload;

  useEvents((e: UvmmEvent) => {
    if ((e.kind === 'vm_state' || e.kind === 'vm_changed') && e.vm) {
      const vm = e.vm;
      let found = false;
      pages.current.forEach((rows) => {
        const i = rows.findIndex((r) => r.uuid === vm.uuid && r.host_id === vm.host_id);
        if (i >= 0) {
          rows[i] = vm;
          found = true;
        }
      });
      if (found) bump();
      // The row may now fall out of the filter or move in the order.
      if (query.state || query.q || query.sort !== 'name' || !found) reloadRef.current();
    } else if (e.kind !== 'pool_alert' && e.kind !== 'pool_changed') {
      reloadRef.current();
    }
  });
  useResync(() => reloadRef.current());

  // CPU figures change every statistics round without an event.
  useEffect(() => {
    const id = setInterval(() => {
      if (document.visibilityState === 'visible') reloadRef.current();
    }, 5000);
    return () => clearInterval(id);
  }, []);

  useEffect(() => {
    const el = scroller.current;
    if (!el) return;
    const ro = new ResizeObserver(() => setViewH(el.clientHeight));
    ro.observe(el);
    setViewH(el.clientHeight);
    return () => ro.disconnect();
  }, []);

  let frame = 0;
  const onScroll = () => {
    if (frame) return;
    frame = requestAnimationFrame(() => {
      frame = 0;
      setScrollTop(scroller.current?.scrollTop ?? 0);
    });
  };

  const count = total ?? 0;
  const first = Math.max(0, Math.floor(scrollTop / ROW) - 5);
  const last = Math.min(count, Math.ceil((scrollTop + viewH) / ROW) + 5);
  const rows = [];
  for (let i = first; i < last; i++) {
    const vm = pages.current.get(Math.floor(i / PAGE))?.[i % PAGE];
    rows.push(vm ? <VmRow vm={vm} index={i} key={`${vm.host_id}/${vm.uuid}`} /> : <PlaceholderRow index={i} key={`p${i}`} />);
  }
  const desc = query.sort.startsWith('-');
  const sortKey = query.sort.replace(/^-/, '');

  return (
    <div
      class="grid"
      role="table"
      aria-label={t('vms.grid')}
      aria-rowcount={count + 1}
      aria-busy={shownQuery !== queryKey}
      data-testid="vm-grid"
      data-query={shownQuery}
      data-total={total ?? ''}
    >
      <p class="grid-count" role="status">
        {total === null ? t('common.loading') : tn('vms.count', count)}
      </p>
      <div class="grid-head" role="row" aria-rowindex={1}>
        {SORTS.map((s) => (
          <div
            role="columnheader"
            class={s.cls}
            aria-sort={sortKey === s.key ? (desc ? 'descending' : 'ascending') : undefined}
          >
            <button
              type="button"
              class="sort"
              onClick={() => onSort(sortKey === s.key && !desc ? `-${s.key}` : s.key)}
              data-sort={s.key}
            >
              {t(s.label)}
              <span aria-hidden="true">{sortKey === s.key ? (desc ? ' ▼' : ' ▲') : ''}</span>
            </button>
          </div>
        ))}
        <div role="columnheader" class="c-vnc">
          {t('grid.vnc')}
        </div>
        <div role="columnheader" class="c-actions">
          {t('grid.actions')}
        </div>
      </div>
      <div class="grid-body" ref={scroller} onScroll={onScroll} style={{ '--row': `${ROW}px` }}>
        <div class="grid-spacer" style={{ height: `${count * ROW}px` }}>
          <div class="grid-rows" style={{ transform: `translateY(${first * ROW}px)` }}>
            {rows}
          </div>
        </div>
        {total === 0 && <p class="empty">{t('vms.none')}</p>}
      </div>
    </div>
  );
}

function PlaceholderRow({ index }: { index: number }) {
  return (
    <div class="grid-row placeholder" role="row" aria-rowindex={index + 2}>
      <div role="cell" class="c-name muted">
        …
      </div>
    </div>
  );
}

/** One row; memoised: while scrolling, rows that stay in view are not rendered again
 * (an event or a reload replaces the row's object, which renders it). */
const VmRow = memo(function VmRow({ vm, index }: { vm: VmSummary; index: number }) {
  const [busy, setBusy] = useState(false);
  const act = async (a: (typeof QUICK)[number]) => {
    setBusy(true);
    await runAction(vm, a);
    setBusy(false);
  };
  const href = vmPath(vm.host_id, vm.uuid);
  return (
    <div class={`grid-row${vm.available ? '' : ' unavailable'}`} role="row" aria-rowindex={index + 2} data-vm={vm.name} data-host={vm.host_id}>
      <div role="cell" class="c-state">
        <StateBadge state={vm.state} suspended={vm.suspended} available={vm.available} />
      </div>
      <div role="cell" class="c-name">
        <a href={href} onClick={onLinkClick} class="vm-link" title={vm.name}>
          {vm.name}
        </a>
        {vm.description && (
          <span class="desc" title={vm.description}>
            {vm.description}
          </span>
        )}
      </div>
      <div role="cell" class="c-host">
        {vm.host_id}
      </div>
      <div role="cell" class="c-cpu">
        {vm.state === 'running' ? (
          <Bar value={vm.cpu_usage} label={t('grid.cpu_of', { name: vm.name })} text={`${num(vm.cpu_usage)} % · ${tn('grid.vcpus', vm.vcpus)}`} />
        ) : (
          <span class="muted">{tn('grid.vcpus', vm.vcpus)}</span>
        )}
      </div>
      <div role="cell" class="c-mem">
        {kib(vm.memory_kib)}
      </div>
      <div role="cell" class="c-vnc">
        {/* The console opens from here: the actions cell has no room for a fourth button
            in German. The port stays in the button's title. */}
        {can('console', vmTarget(vm)) && hasConsole(vm) ? (
          <a
            class="button small icon-button"
            href={vmPath(vm.host_id, vm.uuid, 'console')}
            onClick={onLinkClick}
            aria-label={`${t('console.open')}: ${vm.name}`}
            title={`${t('console.open')} · ${t('grid.vnc_port')} ${vm.vnc_port}`}
            data-testid="console-link"
          >
            <svg viewBox="0 0 16 16" width="16" height="16" aria-hidden="true">
              <path d="M1.5 2.5h13v8.5h-13z M5 14h6 M8 11v3" fill="none" stroke="currentColor" stroke-width="1.5" />
            </svg>
          </a>
        ) : vm.vnc_port != null ? (
          <span title={t('grid.vnc_port')}>{vm.vnc_port}</span>
        ) : (
          <span class="muted">–</span>
        )}
      </div>
      <div role="cell" class="c-actions">
        {QUICK.filter((a) => can('lifecycle', vmTarget(vm)) && allowed(vm, a)).map((a) => (
          <button
            type="button"
            class={`small${a === 'stop' ? ' danger-outline' : ''}`}
            disabled={busy}
            onClick={() => act(a)}
            aria-label={`${actionLabel(a, vm)}: ${vm.name}`}
            data-action={a}
          >
            {actionLabel(a, vm)}
          </button>
        ))}
      </div>
    </div>
  );
});
