// The shell: header with navigation, language and connection state; the page for the
// current path; toasts and confirmation dialogs.

import type { ComponentChildren } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { ApiError, auth, me } from './api/client';
import { ConfirmHost } from './components/dialog';
import { describeError, Toasts } from './components/feedback';
import { TaskPanel } from './components/tasks';
import { initialLang, lang, LANGS, setLang, t, type Key, type Lang, tn } from './i18n';
import { directory, pools, startLive, stopLive, streamState } from './live';
import { Backups } from './pages/Backups';
import { CreateWizard } from './pages/CreateWizard';
import { Login } from './pages/Login';
import { Overview } from './pages/Overview';
import { Storage } from './pages/Storage';
import { VmPage } from './pages/VmPage';
import { navigate, onLinkClick, useRoute } from './router';
import { can, useCan } from './session';
import { useStore } from './store';

setLang(initialLang(), false);

type LoginState = 'checking' | 'out' | 'in';

export function App() {
  const [langState, setLangState] = useState<Lang>(lang());
  const [state, setState] = useState<LoginState>(auth.hasCredential() ? 'checking' : 'out');
  // Why the login page shows (the session expired, logged out): said on it.
  const [notice, setNotice] = useState<string | null>(null);
  const route = useRoute();

  useEffect(() => {
    // The server refused the session (expired, ended elsewhere) or the token: back to the
    // login page with the reason; the address stays, so the user returns to where they
    // were after logging in again.
    auth.onUnauthorized((e) => {
      // Logged out already (a request that was under way at the logout): nothing ended.
      if (!me.get()) return;
      auth.forget();
      stopLive();
      setNotice(`${t('login.expired')} ${describeError(e).text}`.trim());
      setState('out');
    });
    if (state === 'checking') {
      auth.resume().then(
        (who) => setState(who ? 'in' : 'out'),
        (e) => {
          // 401: the session or token ended; otherwise uvmmd could not be asked.
          const d = describeError(e);
          setNotice(e instanceof ApiError && e.status === 401 ? `${t('login.expired')} ${d.text}`.trim() : `${d.title}: ${d.text}`);
          setState('out');
        },
      );
    }
  }, []);
  useEffect(() => {
    if (state === 'in') startLive();
  }, [state]);

  const changeLang = (l: Lang) => {
    setLang(l, true);
    setLangState(l);
  };

  if (state === 'checking') {
    return (
      <div class="app" key={langState}>
        <main id="main" class="login">
          <p class="muted">{t('common.loading')}</p>
        </main>
      </div>
    );
  }
  if (state === 'out') {
    return (
      <div class="app" key={langState}>
        <Login
          onDone={() => {
            setNotice(null);
            setState('in');
            if (route[0] === 'login') navigate('/', true);
          }}
          lang={langState}
          onLang={changeLang}
          notice={notice}
        />
        <Toasts />
      </div>
    );
  }

  let page;
  let title = t('nav.overview');
  switch (route[0]) {
    case undefined:
    case 'login':
      page = <Overview />;
      break;
    case 'vms':
      page = route[1] && route[2] ? <VmPage hostId={route[1]} uuid={route[2]} tab={route[3] ?? 'general'} /> : <Overview />;
      title = t('vm.title');
      break;
    case 'create':
      page = can('create') ? (
        <CreateWizard />
      ) : (
        <section class="page">
          <h1>{t('nav.create')}</h1>
          <p class="notice info" data-testid="not-permitted">
            {t('role.not_permitted')}
          </p>
        </section>
      );
      title = t('nav.create');
      break;
    case 'storage':
      page = <Storage />;
      title = t('nav.storage');
      break;
    case 'backups':
      page = <Backups />;
      title = t('nav.backups');
      break;
    default:
      page = (
        <section class="page">
          <h1>{t('notfound.title')}</h1>
          <p>
            <a href="/" onClick={onLinkClick}>
              {t('notfound.back')}
            </a>
          </p>
        </section>
      );
  }
  document.title = `${title} · uvmm`;

  return (
    <div class="app" key={langState}>
      <a class="skip" href="#main">
        {t('nav.skip')}
      </a>
      <Header
        current={route[0] ?? ''}
        lang={langState}
        onLang={changeLang}
        onLogout={async () => {
          stopLive();
          await auth.logout();
          setNotice(t('login.logged_out'));
          setState('out');
        }}
      />
      <main id="main" tabIndex={-1}>
        {page}
      </main>
      <TaskPanel />
      <Toasts />
      <ConfirmHost />
    </div>
  );
}

function Header(props: { current: string; lang: Lang; onLang: (l: Lang) => void; onLogout: () => void }) {
  const stream = useStore(streamState);
  const poolList = useStore(pools);
  const dir = useStore(directory);
  const who = useStore(me);
  const can = useCan();
  const alerts = (poolList ?? []).filter((p) => p.level !== 'ok').length;
  const link = (href: string, id: string, label: string, extra?: ComponentChildren) => (
    <a href={href} onClick={onLinkClick} aria-current={props.current === id ? 'page' : undefined}>
      {label}
      {extra}
    </a>
  );
  return (
    <header class="top">
      <a class="brand" href="/" onClick={onLinkClick}>
        uvmm
      </a>
      <nav aria-label={t('nav.main')}>
        {link('/', '', t('nav.overview'))}
        {can('create') && link('/create', 'create', t('nav.create'))}
        {link(
          '/storage',
          'storage',
          t('nav.storage'),
          alerts > 0 && (
            <span class="badge" aria-label={tn('nav.pool_alerts', alerts)} data-testid="pool-alert-badge">
              {alerts}
            </span>
          ),
        )}
        {link('/backups', 'backups', t('nav.backups'))}
      </nav>
      <div class="top-right">
        {dir?.degraded && (
          <span class="live live-degraded" role="status" data-testid="directory-state" title={dir.degraded_reason ?? undefined}>
            <span class="dot" aria-hidden="true" />
            {tn('live.directory_degraded', dir.pending_writes)}
          </span>
        )}
        <span class={`live live-${stream}`} role="status" data-testid="stream-state" data-state={stream}>
          <span class="dot" aria-hidden="true" />
          {t(`live.${stream}` as Key)}
        </span>
        <label class="lang">
          <span class="visually-hidden">{t('nav.language')}</span>
          <select value={props.lang} onChange={(e) => props.onLang((e.currentTarget as HTMLSelectElement).value as Lang)} data-testid="lang">
            {LANGS.map((l) => (
              <option value={l}>{t(`lang.${l}` as Key)}</option>
            ))}
          </select>
        </label>
        {who && (
          <span class="who" data-testid="whoami" data-role={who.role ?? ''}>
            {who.user} · {who.role ? t(`role.${who.role}` as Key) : t('role.none')}
          </span>
        )}
        <button type="button" class="link-button" onClick={props.onLogout} data-testid="logout">
          {t('nav.logout')}
        </button>
      </div>
    </header>
  );
}
