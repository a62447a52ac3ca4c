// The login page: user name and password of a local account (PAM service `uvmm` on the
// uvmmd host; the role comes from the account's groups, docs/auth.md). An API token is
// the secondary way in ("Use an API token"), for installations without PAM accounts.

import { useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, auth } from '../api/client';
import { ErrorBox } from '../components/feedback';
import { LANGS, t, type Key, type Lang } from '../i18n';

export function Login(props: { onDone: () => void; lang: Lang; onLang: (l: Lang) => void; notice?: string | null }) {
  const [useToken, setUseToken] = useState(false);
  const [user, setUser] = useState('');
  const [password, setPassword] = useState('');
  const [token, setToken] = useState('');
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const first = useRef<HTMLInputElement>(null);
  useEffect(() => first.current?.focus(), [useToken]);
  document.title = `${t('login.title')} · uvmm`;
  const ready = useToken ? !!token.trim() : !!user.trim() && !!password;
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      if (useToken) await auth.loginToken(token);
      else await auth.login(user.trim(), password);
      props.onDone();
    } catch (err) {
      setPassword('');
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <main class="login" id="main">
      <form onSubmit={submit} class="login-form" aria-describedby="login-help">
        <h1>{t('login.title')}</h1>
        {props.notice && (
          <p class="notice warning" role="alert" data-testid="login-notice">
            {props.notice}
          </p>
        )}
        <p id="login-help">{useToken ? t('login.token_help') : t('login.help')}</p>
        {useToken ? (
          <div class="field">
            <label for="token">{t('login.token')}</label>
            <input
              id="token"
              name="token"
              type="password"
              autocomplete="off"
              required
              ref={first}
              value={token}
              onInput={(e) => setToken((e.currentTarget as HTMLInputElement).value)}
            />
            <div class="field-hint">{t('login.token_hint')}</div>
          </div>
        ) : (
          <>
            <div class="field">
              <label for="user">{t('login.user')}</label>
              <input
                id="user"
                name="username"
                autocomplete="username"
                autocapitalize="none"
                spellcheck={false}
                required
                ref={first}
                value={user}
                onInput={(e) => setUser((e.currentTarget as HTMLInputElement).value)}
              />
            </div>
            <div class="field">
              <label for="password">{t('login.password')}</label>
              <input
                id="password"
                name="password"
                type="password"
                autocomplete="current-password"
                required
                value={password}
                onInput={(e) => setPassword((e.currentTarget as HTMLInputElement).value)}
              />
            </div>
          </>
        )}
        {error instanceof ApiError && error.status === 401 ? (
          <div class="error-box" role="alert" data-testid="login-refused">
            <strong>{useToken ? t('login.token_refused') : t('login.refused')}</strong>
            <div class="hint">{useToken ? t('hint.unauthorized') : t('login.refused_hint')}</div>
          </div>
        ) : error ? (
          <ErrorBox error={error} />
        ) : null}
        <div class="buttons">
          <button type="submit" class="primary" disabled={busy || !ready}>
            {t('login.submit')}
          </button>
        </div>
        <p>
          <button
            type="button"
            class="link-button"
            data-testid="login-mode"
            onClick={() => {
              setUseToken(!useToken);
              setError(null);
            }}
          >
            {useToken ? t('login.use_password') : t('login.use_token')}
          </button>
        </p>
        <label class="lang">
          {t('nav.language')}{' '}
          <select value={props.lang} onChange={(e) => props.onLang((e.currentTarget as HTMLSelectElement).value as Lang)}>
            {LANGS.map((l) => (
              <option value={l}>{t(`lang.${l}` as Key)}</option>
            ))}
          </select>
        </label>
      </form>
    </main>
  );
}
