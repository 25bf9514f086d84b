/**
 * The remote builder takes no target: it builds the Dockerfile's last stage. A stage can only use
 * stages before it, so the Dockerfile cut after the target stage builds exactly the target; that cut
 * text is what is sent.
 */
import { parseDockerfile } from '../../dockerfile/dockerfile.ts'
import { splitWords } from '../../dockerfile/substitute.ts'
import { errorMessage, InputError } from '../../errors.ts'

export function cutAfterTarget(dockerfileText: string, target: string, fileName = 'Dockerfile'): string {
  let parsed
  try {
    parsed = parseDockerfile(dockerfileText, { fileName })
  } catch (error) {
    throw new InputError('target', `needs a Dockerfile the action can read to find the stage "${target}": ${errorMessage(error)}`)
  }
  const froms = parsed.instructions.filter((instruction) => instruction.keyword === 'FROM')
  const names = froms.map((from) => {
    const words = splitWords(from.args, parsed.escapeChar)
    return words[1]?.toLowerCase() === 'as' ? (words[2] ?? '') : ''
  })
  const index = names.findIndex((name) => name.toLowerCase() === target.toLowerCase())
  if (index === -1) {
    const known = names.filter((name) => name !== '')
    throw new InputError('target', `"${target}" is not a stage of ${fileName}${known.length ? ` (its stages: ${known.join(', ')})` : ' (it names no stages)'}`)
  }
  const next = froms[index + 1]
  if (next === undefined) return dockerfileText
  return `${dockerfileText.split(/\r?\n/).slice(0, next.line - 1).join('\n')}\n`
}
