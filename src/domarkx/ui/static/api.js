// Talking to the server. Every change is a JSON POST from this page (the server
// checks the Origin header and refuses anything else).

export class ApiError extends Error {
  constructor(message, hint, status) {
    super(message);
    this.hint = hint;
    this.status = status;
  }
}

export function url(path, params = {}) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== null && value !== undefined && value !== "") query.set(key, String(value));
  }
  const text = query.toString();
  return text ? `${path}?${text}` : path;
}

async function answer(response) {
  let data = null;
  try {
    data = await response.json();
  } catch {
    throw new ApiError(`the server answered ${response.status}`, null, response.status);
  }
  if (!response.ok) throw new ApiError(data.error || `error ${response.status}`, data.hint, response.status);
  return data;
}

export async function get(path, params) {
  return answer(await fetch(url(path, params), { credentials: "same-origin" }));
}

export async function post(path, body) {
  return answer(await fetch(path, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  }));
}

export const instancePath = (id) => `/api/instances/${encodeURIComponent(id)}`;

// A turn's events; handlers by event kind. Closes itself when the turn ends.
export function watchTurn(turn, handlers) {
  const source = new EventSource(`/api/turns/${turn}/events`);
  for (const [kind, handler] of Object.entries(handlers)) {
    source.addEventListener(kind, (event) => {
      const data = JSON.parse(event.data);
      if (kind === "done" || kind === "failed") source.close();
      handler(data);
    });
  }
  return source;
}
