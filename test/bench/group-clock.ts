/**
 * Times one remote-output group in the action's stdout as it arrives: from the first byte of remote
 * output (the byte after the group's `::stop-commands::<token>` line) to the `::endgroup::` that
 * closes it, counting the characters in between. It looks at each chunk once and keeps only a short
 * carry-over, so following hundreds of MB costs the bench process almost nothing.
 */

const HEADER = /::group::Run: [^\n]*\n::stop-commands::([^\n]+)\n/
/** The header is near the start; give up looking for it past this much output. */
const MAX_HEADER_SEARCH = 1_000_000

export class GroupClock {
  firstByteAt: number | undefined
  endGroupAt: number | undefined
  /** Characters of remote output inside the stop-commands window. */
  bodyChars = 0
  #state: 'header' | 'body' | 'closing' | 'done' | 'lost' = 'header'
  #head = ''
  #closeMarker = ''
  #carry = ''

  get complete(): boolean {
    return this.#state === 'done'
  }

  describe(): string {
    return `state ${this.#state}, ${this.bodyChars} body chars, first byte ${this.firstByteAt ?? '-'}, endgroup ${this.endGroupAt ?? '-'}`
  }

  push(chunk: string, now = Date.now()): void {
    switch (this.#state) {
      case 'header': {
        this.#head += chunk
        const match = HEADER.exec(this.#head)
        if (match === null) {
          if (this.#head.length > MAX_HEADER_SEARCH) this.#state = 'lost'
          return
        }
        this.#closeMarker = `::${match[1] ?? ''}::\n`
        const rest = this.#head.slice(match.index + match[0].length)
        this.#head = ''
        this.#state = 'body'
        if (rest !== '') this.push(rest, now)
        return
      }
      case 'body': {
        if (chunk !== '' && this.firstByteAt === undefined) this.firstByteAt = now
        const combined = this.#carry + chunk
        const index = combined.indexOf(this.#closeMarker)
        if (index === -1) {
          this.bodyChars += chunk.length
          this.#carry = combined.slice(-this.#closeMarker.length)
          return
        }
        // The carry was already counted, so the body ends `index - carry.length` into this chunk.
        this.bodyChars += index - this.#carry.length
        this.#carry = ''
        this.#state = 'closing'
        this.push(combined.slice(index + this.#closeMarker.length), now)
        return
      }
      case 'closing': {
        this.#carry += chunk
        if (this.#carry.includes('::endgroup::')) {
          this.endGroupAt = now
          this.#state = 'done'
          this.#carry = ''
        } else if (this.#carry.length > 4096) {
          this.#carry = this.#carry.slice(-64)
        }
        return
      }
      default:
        return
    }
  }
}
