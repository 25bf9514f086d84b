/**
 * The action's own log lines that quote user or Dockerfile text (instructions, tags, references, file
 * names). They are printed outside any stop-commands window, so they go through the same sanitiser as
 * remote output: a `RUN echo "##[warning]…"` or a `::error::` in a Dockerfile can never become a
 * workflow command through a status line.
 */
import * as core from '@actions/core'
import { annotationMessage } from './remote-log.ts'
import { sanitizeLine } from './line-sanitizer.ts'

/** core.info for text that may contain user or remote words, one line per line of text. */
export function say(text: string): void {
  for (const line of text.split(/\r\n|\r|\n/)) core.info(sanitizeLine(line))
}

/** core.warning for such text: one annotation, with the legacy `##[` marker neutralised. */
export function warn(text: string): void {
  core.warning(annotationMessage(text))
}
