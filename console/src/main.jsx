import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { t, getLang, setLang, onLang } from './i18n.js';
import { loadConfig, api, onUnauthorized } from './api.js';
import { signedIn, signOut, session } from './auth.js';
import { parse, href } from './route.js';
import { SignIn } from './SignIn.jsx';
import { Mailboxes, MessageList } from './Inbox.jsx';
import { MessageView } from './Message.jsx';
import { CampaignList, CampaignView } from './Campaigns.jsx';
import { CampaignWizard } from './Wizard.jsx';
import { AdminHome, AddMailbox, MailboxHealth, isAdmin } from './Admin.jsx';
import { ErrorNote } from './ui.jsx';
import './style.css';

function useRoute() {
  const [route, setRoute] = useState(parse(location.hash));
  useEffect(() => {
    const changed = () => setRoute(parse(location.hash));
    addEventListener('hashchange', changed);
    return () => removeEventListener('hashchange', changed);
  }, []);
  return route;
}

const navigate = (parts, params) => {
  location.hash = href(parts, params);
};

function App() {
  const [, setLanguage] = useState(getLang());
  const [config, setConfig] = useState(null);
  const [failed, setFailed] = useState(false);
  const [me, setMe] = useState(null);
  const [meError, setMeError] = useState(null);
  const [notice, setNotice] = useState(null);
  const [, setTick] = useState(0);
  const route = useRoute();

  useEffect(() => onLang(setLanguage), []);
  useEffect(() => {
    document.documentElement.lang = getLang();
    loadConfig().then(setConfig, () => setFailed(true));
    onUnauthorized(() => {
      signOut();
      setMe(null);
      setNotice(t('signIn.expired'));
    });
  }, []);
  useEffect(() => {
    if (config && signedIn() && !me) {
      api('/me').then(setMe, setMeError);
    }
  });

  function leave() {
    signOut();
    setMe(null);
    setNotice(t('signIn.signedOut'));
    navigate([]);
  }

  const language = (
    <button type="button" class="lang" lang={getLang() === 'it' ? 'en' : 'it'} title={t('lang.switchLabel')} onClick={() => setLang(getLang() === 'it' ? 'en' : 'it')}>
      {t('lang.switch')}
    </button>
  );

  let body;
  if (failed) body = <main id="content"><p class="note note-error" role="alert">{t('error.config')}</p></main>;
  else if (!config) body = <main id="content"><p>{t('common.loading')}</p></main>;
  else if (!signedIn()) body = <SignIn settings={config.signIn} notice={notice} onSignedIn={() => { setNotice(null); setMeError(null); setTick((n) => n + 1); }} />;
  else if (!me) body = <main id="content">{meError ? <ErrorNote error={meError} /> : <p>{t('common.loading')}</p>}</main>;
  else {
    const [where, mailbox, what, sha] = route.parts;
    const access = me.mailboxes.find((m) => m.mailbox === (mailbox || '').toLowerCase());
    const campaigns = access && (access.role === 'manager' || access.role === 'admin');
    if (where === 'admin' && isAdmin(me)) {
      if (mailbox === 'new-mailbox') body = <AddMailbox navigate={navigate} onAdded={() => api('/me').then(setMe, setMeError)} />;
      else if (mailbox === 'box' && what) body = <MailboxHealth mailbox={what} added={route.params.added === '1'} />;
      else body = <AdminHome me={me} params={route.params} navigate={navigate} />;
    } else if (where === 'box' && campaigns && what === 'campaigns' && sha === 'new')
      body = <CampaignWizard mailbox={access.mailbox} />;
    else if (where === 'box' && campaigns && what === 'campaigns' && sha)
      body = <CampaignView mailbox={access.mailbox} id={sha} role={access.role} />;
    else if (where === 'box' && campaigns && what === 'campaigns')
      body = <CampaignList mailbox={access.mailbox} />;
    else if (where === 'box' && access && what === 'msg' && sha)
      body = <MessageView me={me} mailbox={access.mailbox} role={access.role} sha={sha} params={route.params} />;
    else if (where === 'box' && access)
      body = <MessageList me={me} mailbox={access.mailbox} role={access.role} params={route.params} navigate={navigate} />;
    else body = <Mailboxes me={me} />;
  }

  return (
    <>
      <a class="skip" href="#content" onClick={(e) => { e.preventDefault(); const main = document.getElementById('content'); if (main) { main.tabIndex = -1; main.focus(); } }}>
        {t('app.skip')}
      </a>
      <header class="top">
        <a class="brand" href={href([])}>pecflow</a>
        <nav class="top-nav" aria-label="pecflow">
          {me && <a href={href([])}>{t('nav.mailboxes')}</a>}
          {me && isAdmin(me) && <a href={href(['admin'])}>{t('nav.admin')}</a>}
          {language}
          {me && (
            <>
              <span class="who">{t('nav.signedInAs', { name: me.name || session.username })}</span>
              <button type="button" onClick={leave}>{t('nav.signOut')}</button>
            </>
          )}
        </nav>
      </header>
      {body}
    </>
  );
}

render(<App />, document.getElementById('app'));
