import { useState, useRef, useEffect } from 'preact/hooks';
import { t } from './i18n.js';
import { startSignIn, answerCode, enrol, SignInError } from './auth.js';

function reason(error) {
  const type = error instanceof SignInError ? error.type : 'Unknown';
  if (type === 'NotAuthorizedException' || type === 'UserNotFoundException') return t('signIn.wrongPassword');
  if (type === 'CodeMismatchException' || type === 'EnableSoftwareTokenMFAException' || type === 'ExpiredCodeException')
    return t('signIn.wrongCode');
  if (type === 'Network') return t('signIn.unavailable');
  if (type === 'UnsupportedChallenge') return t('signIn.unsupported', { name: error.message });
  return error.message || type;
}

export function SignIn({ settings, notice, onSignedIn }) {
  const [step, setStep] = useState(null); // null: password; else the challenge
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const heading = useRef(null);

  useEffect(() => {
    document.title = `${t('signIn.title')} — pecflow`;
    // the first step starts in the username field; a challenge at its heading (its text is read first)
    const first = step ? heading.current : document.getElementById('username');
    if (first) first.focus();
  }, [step]);

  async function run(work) {
    setBusy(true);
    setError(null);
    try {
      const outcome = await work();
      if (outcome.done) onSignedIn();
      else setStep(outcome);
    } catch (failure) {
      setError(reason(failure));
    } finally {
      setBusy(false);
    }
  }

  function submit(event) {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    const code = String(form.get('code') || '').replace(/\s+/g, '');
    if (!step) run(() => startSignIn(settings, String(form.get('username')).trim(), String(form.get('password'))));
    else if (step.challenge === 'SOFTWARE_TOKEN_MFA') run(() => answerCode(settings, step, code));
    else run(() => enrol(settings, step, code, String(form.get('device') || '')));
  }

  const title = !step ? t('signIn.title') : step.challenge === 'MFA_SETUP' ? t('signIn.setupTitle') : t('signIn.mfaTitle');
  return (
    <main id="content" class="sign-in">
      <h1 tabIndex={-1} ref={heading}>
        {title}
      </h1>
      {notice && !step && (
        <p class="note note-ok" role="status">
          {notice}
        </p>
      )}
      {error && (
        <p class="note note-error" role="alert">
          {t('signIn.failed', { reason: error })}
        </p>
      )}
      <form onSubmit={submit} class="stack">
        {!step && (
          <>
            <label for="username">{t('signIn.username')}</label>
            <input id="username" name="username" autoComplete="username" required autoCapitalize="none" spellcheck={false} />
            <label for="password">{t('signIn.password')}</label>
            <input id="password" name="password" type="password" autoComplete="current-password" required />
          </>
        )}
        {step && step.challenge === 'MFA_SETUP' && (
          <>
            <p>{t('signIn.setupIntro')}</p>
            <dl class="secret">
              <dt>{t('signIn.secret')}</dt>
              <dd>
                <code data-testid="totp-secret">{step.secret}</code>
              </dd>
              <dt>{t('signIn.uri')}</dt>
              <dd>
                <code class="wrap">{step.uri}</code>
              </dd>
            </dl>
            <label for="device">{t('signIn.deviceName')}</label>
            <input id="device" name="device" autoComplete="off" />
          </>
        )}
        {step && (
          <>
            <label for="code">{t('signIn.code')}</label>
            <input
              id="code"
              name="code"
              inputMode="numeric"
              autoComplete="one-time-code"
              pattern="[0-9 ]{6,7}"
              required
              aria-describedby="code-help"
            />
            <p id="code-help" class="help">
              {t('signIn.codeHelp')}
            </p>
          </>
        )}
        <button type="submit" class="primary" disabled={busy}>
          {!step ? t('signIn.submit') : step.challenge === 'MFA_SETUP' ? t('signIn.enrol') : t('signIn.verify')}
        </button>
      </form>
    </main>
  );
}
