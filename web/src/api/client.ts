// Typed calls to the REST API. Every failure becomes an ApiError carrying the server's
// `{"error":{"code","message"}}`, so pages can show the server's own words.
import type {
  Account, AdminJob, DataFile, Health, Id, Job, JobEvent, JobResult, Priority, QueueCount, Role, Template, User, WorkerInfo, WorkerRecord,
} from './types';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

/** Builds an ApiError from a failed response body (which may not be JSON at all, e.g. from a proxy). */
function errorFrom(status: number, bodyText: string): ApiError {
  try {
    const body = JSON.parse(bodyText) as { error?: { code?: string; message?: string } };
    if (body.error?.message) return new ApiError(status, body.error.code ?? 'error', body.error.message);
  } catch {
    // not JSON: fall through
  }
  return new ApiError(status, 'http_' + status, `The server answered ${status}${bodyText ? ': ' + bodyText.slice(0, 200) : ''}`);
}

async function request<T>(method: string, path: string, body?: unknown): Promise<T> {
  let response: Response;
  try {
    response = await fetch(path, {
      method,
      credentials: 'same-origin',
      headers: body === undefined ? {} : { 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, 'network', 'The server cannot be reached. Check your connection and try again.');
  }
  const text = await response.text();
  if (!response.ok) throw errorFrom(response.status, text);
  return (text ? JSON.parse(text) : undefined) as T;
}

/**
 * Uploads a recording with XMLHttpRequest rather than fetch, because only XHR reports upload
 * progress. `onProgress` receives a fraction between 0 and 1.
 */
function uploadFile(patientRef: string, file: File, onProgress: (fraction: number) => void): Promise<DataFile> {
  const form = new FormData();
  form.append('patient_ref', patientRef); // the server reads the text field before the file
  form.append('file', file);
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', '/api/files');
    xhr.upload.onprogress = (event) => {
      if (event.lengthComputable) onProgress(event.loaded / event.total);
    };
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) resolve(JSON.parse(xhr.responseText) as DataFile);
      else reject(errorFrom(xhr.status, xhr.responseText));
    };
    xhr.onerror = () => reject(new ApiError(0, 'network', 'The upload was interrupted. Check your connection and try again.'));
    xhr.send(form);
  });
}

export const api = {
  login: (email: string, password: string) => request<User>('POST', '/api/auth/login', { email, password }),
  logout: () => request<void>('POST', '/api/auth/logout'),
  me: () => request<User>('GET', '/api/me'),

  users: () => request<Account[]>('GET', '/api/users'),
  createUser: (email: string, password: string, role: Role) =>
    request<Account>('POST', '/api/users', { email, password, role }),

  files: () => request<DataFile[]>('GET', '/api/files'),
  uploadFile,
  deleteFile: (id: Id) => request<void>('DELETE', `/api/files/${id}`),

  startJob: (fileId: Id, priority: Priority = 'normal') => request<Job>('POST', `/api/files/${fileId}/jobs`, { priority }),
  job: (id: Id) => request<Job>('GET', `/api/jobs/${id}`),
  result: (jobId: Id) => request<JobResult>('GET', `/api/jobs/${jobId}/result`),
  deleteResult: (jobId: Id) => request<void>('DELETE', `/api/jobs/${jobId}/result`),

  workers: () => request<WorkerInfo[]>('GET', '/api/admin/workers'),
  workerRecords: () => request<WorkerRecord[]>('GET', '/api/admin/worker-records'),
  queues: () => request<QueueCount[]>('GET', '/api/admin/queues'),
  jobEvents: (jobId: Id) => request<JobEvent[]>('GET', `/api/admin/jobs/${jobId}/events`),
  adminJobs: () => request<AdminJob[]>('GET', '/api/admin/jobs'),
  templates: () => request<Template[]>('GET', '/api/templates'),
  health: () => request<Health>('GET', '/api/health'),
};

/** A message for people from any thrown value. */
export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
