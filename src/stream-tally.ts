/**
 * Counts and hashes the remote bytes of each stream on their way to the log, so a debug run can
 * prove that what the service sent is exactly what arrived (after drops, resumes and gzip).
 */
import { createHash, type Hash } from 'node:crypto'
import type { OutputSink } from './providers/types.ts'

export class StreamTally implements OutputSink {
  private readonly inner: OutputSink
  private readonly totals = {
    stdout: { bytes: 0, hash: createHash('sha256') as Hash },
    stderr: { bytes: 0, hash: createHash('sha256') as Hash },
  }

  constructor(inner: OutputSink) {
    this.inner = inner
  }

  write(stream: 'stdout' | 'stderr', chunk: Uint8Array): void {
    const total = this.totals[stream]
    total.bytes += chunk.byteLength
    total.hash.update(chunk)
    this.inner.write(stream, chunk)
  }

  ready(): Promise<void> | undefined {
    return this.inner.ready?.()
  }

  note(text: string): void {
    this.inner.note?.(text)
  }

  /** e.g. "stdout: 12 bytes, sha256 …; stderr: 0 bytes, sha256 …" */
  describe(): string {
    return (['stdout', 'stderr'] as const)
      .map((stream) => `${stream}: ${this.totals[stream].bytes} bytes, sha256 ${this.totals[stream].hash.digest('hex')}`)
      .join('; ')
  }
}
