// Entry point: the router. Each route names a page module and the role it needs; pages return a
// cleanup function (stop timers, close sockets) that runs when the user leaves them.
import './style.css';
import { api, messageOf } from './api/client';
import type { Role, User } from './api/types';
import { h, replaceChildren } from './dom';
import { currentUser, homeOf, navigate, setCurrentUser } from './session';
import { adminPage } from './pages/admin';
import { filesPage } from './pages/clinician';
import { loginPage } from './pages/login';
import { resultPage } from './pages/result';
import { volunteerPage } from './pages/volunteer';

export interface PageContext {
  /** The element the page fills. */
  root: HTMLElement;
  /** Captured groups of the route's pattern, e.g. the job id. */
  params: string[];
  user: User | null;
}
export type Cleanup = () => void;
export type Page = (context: PageContext) => Cleanup | void;

interface Route {
  pattern: RegExp;
  page: Page;
  title: string;
  /** When set, only this role may open the page; others are sent to log in or to their home. */
  role?: Role;
}

const routes: Route[] = [
  { pattern: /^\/login$/, page: loginPage, title: 'Log in' },
  { pattern: /^\/admin$/, page: adminPage, title: 'Administration', role: 'admin' },
  { pattern: /^\/files$/, page: filesPage, title: 'Recordings', role: 'clinician' },
  { pattern: /^\/jobs\/([^/]+)\/result$/, page: resultPage, title: 'Result', role: 'clinician' },
  { pattern: /^\/volunteer$/, page: volunteerPage, title: 'Donate compute' },
];

const app = document.getElementById('app') as HTMLElement;
let cleanup: Cleanup | void;

async function render(): Promise<void> {
  if (cleanup) cleanup();
  cleanup = undefined;
  const path = location.pathname;
  const route = routes.find((r) => r.pattern.test(path));
  let user: User | null;
  try {
    user = await currentUser();
  } catch (error) {
    replaceChildren(app, h('main', { class: 'page' }, h('p', { class: 'error', role: 'alert' }, messageOf(error))));
    return;
  }
  if (!route) {
    navigate(user ? homeOf(user.role) : '/login', { replace: true });
    return;
  }
  if (route.role && !user) {
    navigate('/login', { replace: true });
    return;
  }
  if (route.role && user && user.role !== route.role) {
    navigate(homeOf(user.role), { replace: true });
    return;
  }
  document.title = `${route.title} · VitalGrid`;
  const main = h('main', { class: 'page' });
  replaceChildren(app, navBar(user), main);
  cleanup = route.page({ root: main, params: path.match(route.pattern)!.slice(1).map(decodeURIComponent), user });
}

function navBar(user: User | null): HTMLElement {
  const logOut = async () => {
    try {
      await api.logout();
    } finally {
      setCurrentUser(null);
      navigate('/login');
    }
  };
  return h(
    'header',
    { class: 'nav' },
    h('a', { href: user ? homeOf(user.role) : '/login', class: 'brand' }, 'VitalGrid'),
    h(
      'nav',
      {},
      user?.role === 'admin' && h('a', { href: '/admin' }, 'Administration'),
      user?.role === 'clinician' && h('a', { href: '/files' }, 'Recordings'),
      h('a', { href: '/volunteer' }, 'Donate compute'),
    ),
    h(
      'div',
      { class: 'who' },
      user
        ? [h('span', { 'data-testid': 'user-email' }, user.email), h('button', { type: 'button', class: 'link', onclick: logOut }, 'Log out')]
        : h('a', { href: '/login' }, 'Log in'),
    ),
  );
}

// Same-origin links navigate without a reload.
document.addEventListener('click', (event) => {
  const link = (event.target as Element).closest('a');
  if (!link || link.target || event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
  const url = new URL(link.href, location.href);
  if (url.origin !== location.origin) return;
  event.preventDefault();
  if (url.pathname !== location.pathname) navigate(url.pathname);
});
window.addEventListener('popstate', () => void render());
void render();
