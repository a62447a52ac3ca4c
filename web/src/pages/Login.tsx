// INTERIM login (until issue 13): the API token of uvmmd's state directory. Issue 13
// replaces the token field with user name and password (PAM) and a session cookie; only
// this page and api/client.ts change.

import { useState } from 'preact/hooks';
import { auth } from '../api/client';
import { ErrorBox } from '../components/feedback';
import { LANGS, t, type Key, type Lang } from '../i18n';

export function Login(props: { onDone: () => void; lang: Lang; onLang: (l: Lang) => void }) {
  const [token, setToken] = useState('');
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await auth.login(token);
      props.onDone();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <main class="login" id="main">
      <form onSubmit={submit} class="login-form" aria-describedby="login-help">
        <h1>{t('login.title')}</h1>
        <p id="login-help">{t('login.help')}</p>
        <div class="field">
          <label for="token">{t('login.token')}</label>
          <input
            id="token"
            name="token"
            type="password"
            autocomplete="off"
            required
            value={token}
            onInput={(e) => setToken((e.currentTarget as HTMLInputElement).value)}
          />
          <div class="field-hint">{t('login.token_hint')}</div>
        </div>
        {error ? <ErrorBox error={error} /> : null}
        <div class="buttons">
          <button type="submit" class="primary" disabled={busy || !token.trim()}>
            {t('login.submit')}
          </button>
        </div>
        <p class="interim">{t('login.interim')}</p>
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
