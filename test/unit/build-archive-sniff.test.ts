import { gzipSync } from 'node:zlib'
import { describe, expect, it } from 'vitest'
import { looksLikeTarArchive } from '../../src/dockerfile/archive-sniff.ts'

/** One tar header block for a file named `name`, with or without the ustar magic. */
function tarHeader(name: string, ustar: boolean): Buffer {
  const block = Buffer.alloc(512)
  block.write(name, 0)
  block.write('0000644\0', 100)
  block.write('00000000000\0', 124)
  block.write('0', 156)
  if (ustar) block.write('ustar\x0000', 257)
  block.fill(0x20, 148, 156)
  let sum = 0
  for (const byte of block) sum += byte
  block.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148)
  return Buffer.concat([block, Buffer.alloc(1024)])
}

describe('looksLikeTarArchive', () => {
  it.each([
    { name: 'ustar tar', data: tarHeader('a.txt', true), archive: true },
    { name: 'v7 tar (checksum only)', data: tarHeader('a.txt', false), archive: true },
    { name: 'gzip-compressed tar', data: gzipSync(tarHeader('a.txt', true)), archive: true },
    { name: 'gzip of plain text', data: gzipSync(Buffer.alloc(2048, 'a')), archive: false },
    { name: 'bzip2 magic', data: Buffer.from('BZh91AY&SY'), archive: true },
    { name: 'xz magic', data: Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, 0, 0]), archive: true },
    { name: 'zstd magic', data: Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0]), archive: true },
    { name: 'text file', data: Buffer.alloc(4096, 'hello '), archive: false },
    { name: 'empty file', data: Buffer.alloc(0), archive: false },
    { name: 'zeros', data: Buffer.alloc(1024), archive: false },
  ])('$name', ({ data, archive }) => {
    expect(looksLikeTarArchive(data)).toBe(archive)
  })
})
