/**
 * Figure 5b: context hashing throughput of the action's own walker (walkContext, which is what a build
 * runs over its context) against `sha256sum` over the same files in the same run. Both read from a warm
 * page cache (an untimed sha256sum pass first), and each walk gets a fresh hasher so its memo (by inode
 * and mtime) cannot answer from the previous round.
 */
import { spawn } from 'node:child_process'
import { rmSync } from 'node:fs'
import path from 'node:path'
import { walkContext } from '../../src/dockerfile/context.ts'
import { createIgnoreMatcher } from '../../src/dockerfile/dockerignore.ts'
import { createFileHasher } from '../../src/dockerfile/file-hasher.ts'
import { benchTempDir, makeContext, type ContextFixture } from './context-fixture.ts'
import { emit, emitError, MB, median, progress, round } from './report.ts'

function sha256sumTree(dir: string, deadlineMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = performance.now()
    const child = spawn('sh', ['-c', 'find "$1" -type f -print0 | xargs -0 sha256sum > /dev/null', 'sh', dir], { stdio: ['ignore', 'ignore', 'pipe'] })
    let stderr = ''
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
    const timer = setTimeout(() => child.kill('SIGKILL'), deadlineMs)
    child.on('error', reject)
    child.on('close', (code) => {
      clearTimeout(timer)
      if (code === 0) resolve(performance.now() - started)
      else reject(new Error(`sha256sum pipeline exited ${code}: ${stderr.slice(0, 300)}`))
    })
  })
}

async function walkTree(dir: string): Promise<{ ms: number; files: number; bytes: number }> {
  const started = performance.now()
  const files = await walkContext(dir, createIgnoreMatcher([]), { hasher: createFileHasher() })
  const ms = performance.now() - started
  return { ms, files: files.length, bytes: files.reduce((sum, file) => sum + file.size, 0) }
}

export async function contextHashing(fixture?: ContextFixture, rounds = 5): Promise<void> {
  const figure = 'build.context_hash_ratio'
  const goal = '>= 0.8 (walkContext MB/s ÷ sha256sum MB/s, same files)'
  let scratch: string | undefined
  try {
    let context = fixture
    if (context === undefined) {
      scratch = benchTempDir('bench-hash-')
      context = makeContext(path.join(scratch, 'ctx'))
    }
    progress(`hash: ${context.files} files, ${round(context.bytes / MB, 1)} MB`)
    await sha256sumTree(context.root, 60_000)
    await walkTree(context.root)
    const walks: number[] = []
    const sums: number[] = []
    let walked = { files: 0, bytes: 0 }
    for (let i = 0; i < rounds; i++) {
      const walk = await walkTree(context.root)
      walked = walk
      walks.push(walk.ms)
      sums.push(await sha256sumTree(context.root, 60_000))
    }
    const walkMs = median(walks)
    const sumMs = median(sums)
    const walkMbps = context.bytes / MB / (walkMs / 1000)
    const sumMbps = context.bytes / MB / (sumMs / 1000)
    emit({
      figure,
      value: round(sumMs / walkMs),
      unit: 'ratio',
      goal,
      walk_mbps: round(walkMbps, 1),
      sha256sum_mbps: round(sumMbps, 1),
      walk_ms: walks.map(Math.round),
      sha256sum_ms: sums.map(Math.round),
      files: walked.files,
      bytes: walked.bytes,
    })
  } catch (error) {
    emitError(figure, 'ratio', goal, error)
  } finally {
    if (scratch !== undefined) rmSync(scratch, { recursive: true, force: true })
  }
}
