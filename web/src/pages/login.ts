// /login: e-mail and password; sends admins to /admin and clinicians to /files.
import { api, messageOf } from '../api/client';
import { h, replaceChildren } from '../dom';
import type { Page } from '../main';
import { homeOf, navigate, setCurrentUser } from '../session';

export const loginPage: Page = ({ root, user }) => {
  if (user) {
    navigate(homeOf(user.role), { replace: true });
    return;
  }
  const email = h('input', { id: 'login-email', type: 'email', name: 'email', autocomplete: 'username', required: true });
  const password = h('input', { id: 'login-password', type: 'password', name: 'password', autocomplete: 'current-password', required: true });
  const submit = h('button', { type: 'submit' }, 'Log in');
  const error = h('p', { class: 'error', role: 'alert' });

  const form = h(
    'form',
    { class: 'card narrow' },
    h('h1', {}, 'Log in to VitalGrid'),
    h('label', { for: 'login-email' }, 'E-mail'),
    email,
    h('label', { for: 'login-password' }, 'Password'),
    password,
    submit,
    error,
  );
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    submit.disabled = true;
    error.textContent = '';
    try {
      const me = await api.login(email.value.trim(), password.value);
      setCurrentUser(me);
      navigate(homeOf(me.role));
    } catch (err) {
      error.textContent = messageOf(err);
      submit.disabled = false;
    }
  });
  replaceChildren(root, form);
  email.focus();
};
