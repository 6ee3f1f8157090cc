// Reading a remote server's answer without trusting its size: outbound calls (webhook deliveries, workflow
// http_request actions) keep only the beginning of what comes back.

/**
 * The first `maxChars` characters of a response body, reading at most `maxBytes` bytes and cancelling the rest.
 * NUL characters are dropped: Postgres text cannot hold them, and a receiver's answer must never fail the record.
 */
export async function readResponseText(response: Response, maxChars: number, maxBytes = maxChars): Promise<string> {
  if (!response.body) return "";
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  while (size < maxBytes) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    size += value.byteLength;
  }
  await reader.cancel().catch(() => {});
  const bytes = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return new TextDecoder().decode(bytes).replaceAll("\u0000", "").slice(0, maxChars);
}
