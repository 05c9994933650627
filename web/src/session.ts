// Who is logged in, and client-side navigation. Kept apart from main.ts so pages can use both
// without importing the router.
import { api, ApiError } from './api/client';
import type { Role, User } from './api/types';

let current: User | null | undefined; // undefined = not asked yet

/** The logged-in user, asking the server once per page load (the session cookie is HttpOnly). */
export async function currentUser(): Promise<User | null> {
  if (current === undefined) {
    try {
      current = await api.me();
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 401)) throw error;
      current = null;
    }
  }
  return current;
}

export function setCurrentUser(user: User | null): void {
  current = user;
}

export function homeOf(role: Role): string {
  return role === 'admin' ? '/admin' : '/files';
}

/** Goes to `path` without reloading; main.ts renders the matching page. */
export function navigate(path: string, options: { replace?: boolean } = {}): void {
  if (options.replace) history.replaceState(null, '', path);
  else history.pushState(null, '', path);
  window.dispatchEvent(new PopStateEvent('popstate'));
}
