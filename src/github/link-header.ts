/**
 * Reads an RFC 8288 `link` header as GitHub sends it for paginated lists:
 * `<https://api.github.com/repositories/1/issues/7/comments?page=2>; rel="next", <…>; rel="last"`.
 */

/** Relation name → target URL. A link with several relations (`rel="next last"`) is listed under each. */
export function parseLinkHeader(value: string | undefined): Map<string, string> {
  const links = new Map<string, string>()
  if (value === undefined) return links
  // A target is everything between < and >, so commas inside URLs do not split links.
  for (const match of value.matchAll(/<([^>]*)>((?:\s*;\s*[^;,]*)*)/g)) {
    const [, target = '', params = ''] = match
    const rel = /(?:^|;)\s*rel\s*=\s*(?:"([^"]*)"|([^\s;,]+))/i.exec(params)
    for (const name of (rel?.[1] ?? rel?.[2] ?? '').split(/\s+/)) {
      if (name !== '' && !links.has(name.toLowerCase())) links.set(name.toLowerCase(), target)
    }
  }
  return links
}

export function nextPageUrl(value: string | undefined): string | undefined {
  return parseLinkHeader(value).get('next')
}
