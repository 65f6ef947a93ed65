// Sign-in with Cognito's own JSON protocol, called by fetch (no SDK): InitiateAuth with
// USER_PASSWORD_AUTH, then SOFTWARE_TOKEN_MFA or MFA_SETUP (AssociateSoftwareToken,
// VerifySoftwareToken) through RespondToAuthChallenge. Locally the stack speaks the same protocol
// (local/sign_in.py). The ID token is kept in this tab's sessionStorage only.

const KEY = 'pecflow.session';

export const session = { token: null, username: null, expires: 0 };

function restore() {
  try {
    const saved = JSON.parse(sessionStorage.getItem(KEY) || 'null');
    if (saved && saved.token && saved.expires > Date.now()) Object.assign(session, saved);
  } catch {
    /* nothing kept */
  }
}
restore();

export const signedIn = () => Boolean(session.token) && session.expires > Date.now();

export function signOut() {
  Object.assign(session, { token: null, username: null, expires: 0 });
  try {
    sessionStorage.removeItem(KEY);
  } catch {
    /* nothing kept */
  }
}

function keep(result, username) {
  const claims = JSON.parse(atob(result.IdToken.split('.')[1].replace(/-/g, '+').replace(/_/g, '/')));
  const expires = claims.exp ? claims.exp * 1000 : Date.now() + (result.ExpiresIn || 3600) * 1000;
  Object.assign(session, { token: result.IdToken, username: claims['cognito:username'] || username, expires });
  try {
    sessionStorage.setItem(KEY, JSON.stringify(session));
  } catch {
    /* kept in memory only */
  }
}

/** A refusal of the user pool: its exception name (NotAuthorizedException, CodeMismatchException…). */
export class SignInError extends Error {
  constructor(type, message) {
    super(message || type);
    this.type = type;
  }
}

async function call(settings, operation, payload) {
  let answer;
  try {
    answer = await fetch(settings.endpoint, {
      method: 'POST',
      headers: {
        'Content-Type': 'application/x-amz-json-1.1',
        'X-Amz-Target': `AWSCognitoIdentityProviderService.${operation}`,
      },
      body: JSON.stringify(payload),
    });
  } catch {
    throw new SignInError('Network');
  }
  const body = await answer.json().catch(() => ({}));
  if (!answer.ok) {
    const type = String(body.__type || answer.headers.get('x-amzn-errortype') || 'Unknown').split('#').pop().split(':')[0];
    throw new SignInError(type, body.message || body.Message);
  }
  return body;
}

/**
 * One step of the sign-in. Returns {done: true} once signed in, or the next step:
 * {challenge: 'SOFTWARE_TOKEN_MFA'|'MFA_SETUP', ...}.
 */
export async function startSignIn(settings, username, password) {
  const answer = await call(settings, 'InitiateAuth', {
    AuthFlow: 'USER_PASSWORD_AUTH',
    ClientId: settings.clientId,
    AuthParameters: { USERNAME: username, PASSWORD: password },
  });
  return next(settings, answer, username);
}

async function next(settings, answer, username) {
  if (answer.AuthenticationResult) {
    keep(answer.AuthenticationResult, username);
    return { done: true };
  }
  const name = answer.ChallengeName;
  const user = (answer.ChallengeParameters && answer.ChallengeParameters.USER_ID_FOR_SRP) || username;
  if (name === 'SOFTWARE_TOKEN_MFA') return { challenge: name, session: answer.Session, username: user };
  if (name === 'MFA_SETUP') {
    const associated = await call(settings, 'AssociateSoftwareToken', { Session: answer.Session });
    const issuer = settings.issuerName || 'pecflow';
    const uri = `otpauth://totp/${encodeURIComponent(`${issuer}:${user}`)}?secret=${associated.SecretCode}&issuer=${encodeURIComponent(issuer)}`;
    return { challenge: name, session: associated.Session, username: user, secret: associated.SecretCode, uri };
  }
  throw new SignInError('UnsupportedChallenge', name);
}

export async function answerCode(settings, step, code) {
  const answer = await call(settings, 'RespondToAuthChallenge', {
    ChallengeName: 'SOFTWARE_TOKEN_MFA',
    ClientId: settings.clientId,
    Session: step.session,
    ChallengeResponses: { USERNAME: step.username, SOFTWARE_TOKEN_MFA_CODE: code },
  });
  return next(settings, answer, step.username);
}

export async function enrol(settings, step, code, deviceName) {
  const verified = await call(settings, 'VerifySoftwareToken', {
    Session: step.session,
    UserCode: code,
    FriendlyDeviceName: deviceName || undefined,
  });
  if (verified.Status !== 'SUCCESS') throw new SignInError('CodeMismatchException');
  const answer = await call(settings, 'RespondToAuthChallenge', {
    ChallengeName: 'MFA_SETUP',
    ClientId: settings.clientId,
    Session: verified.Session,
    ChallengeResponses: { USERNAME: step.username },
  });
  return next(settings, answer, step.username);
}
