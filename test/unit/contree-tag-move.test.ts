/**
 * Moving a ConTree tag is two requests (the service refuses a tag another image holds), so the name
 * points nowhere in between: a second request that fails must give the tag back to its old holder.
 */
import { describe, expect, it } from 'vitest'
import { moveTag, TagMoveError } from '../../src/providers/contree/tags.ts'
import type { Image } from '../../src/providers/contree/wire.ts'

function fakeApi(opts: { failTagOn?: string[] } = {}) {
  const holders = new Map<string, string>([['base:nightly', 'old']])
  const calls: string[] = []
  const failing = new Set(opts.failTagOn ?? [])
  return {
    calls,
    holder: (tag: string) => holders.get(tag) ?? null,
    api: {
      async untagImage(uuid: string, tag: string) {
        calls.push(`untag ${uuid}`)
        if (holders.get(tag) === uuid) holders.delete(tag)
        return 'untagged' as const
      },
      async tagImage(uuid: string, tag: string): Promise<Image> {
        calls.push(`tag ${uuid}`)
        if (failing.has(uuid)) throw new Error(`503 for ${uuid}`)
        if (holders.has(tag) && holders.get(tag) !== uuid) throw new Error('409 tag held')
        holders.set(tag, uuid)
        return { uuid, tag } as Image
      },
    },
  }
}

describe('moving a ConTree tag', () => {
  it('takes the tag from its holder, then gives it to the new image', async () => {
    const fake = fakeApi()
    await moveTag(fake.api, { tag: 'base:nightly', from: 'old', to: 'new' })
    expect(fake.calls).toEqual(['untag old', 'tag new'])
    expect(fake.holder('base:nightly')).toBe('new')
  })

  it('gives the tag back to the old holder when the new image cannot take it', async () => {
    const fake = fakeApi({ failTagOn: ['new'] })
    const error = await moveTag(fake.api, { tag: 'base:nightly', from: 'old', to: 'new' }).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(TagMoveError)
    expect((error as TagMoveError).restored).toBe(true)
    expect((error as Error).message).toMatch(/stays on image old/)
    expect(fake.holder('base:nightly')).toBe('old')
  })

  it('says plainly when even giving it back failed', async () => {
    const fake = fakeApi({ failTagOn: ['new', 'old'] })
    const error = await moveTag(fake.api, { tag: 'base:nightly', from: 'old', to: 'new' }).catch((e: unknown) => e)
    expect((error as TagMoveError).restored).toBe(false)
    expect((error as Error).message).toMatch(/may now name no image/)
  })
})
