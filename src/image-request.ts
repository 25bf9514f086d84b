/**
 * What the inputs ask the provider to prepare (a build, a registry image, or an image the service
 * already holds), in the provider boundary's terms. Shared by every mode that needs an image.
 */
import type { Inputs } from './inputs.ts'
import type { ImageRequest } from './providers/types.ts'

/** What to prepare, in the provider's terms: a build, a registry image, or an image the service holds. */
export function imageRequest(inputs: Inputs): ImageRequest {
  const deadlineMs = inputs.deadlineSeconds * 1000
  if (inputs.build) {
    const { dockerfile, context, buildArgs, target } = inputs.build
    return { kind: 'build', dockerfile, context, buildArgs, ...(target ? { target } : {}), noCache: inputs.noCache, deadlineMs }
  }
  const spec = inputs.image
  if (!spec) throw new Error('internal: no image to prepare')
  switch (spec.kind) {
    case 'registry':
      return { kind: 'image', reference: spec.reference, noCache: inputs.noCache, deadlineMs }
    case 'uuid':
      return { kind: 'existing', ref: spec.uuid }
    case 'tag':
      return { kind: 'existing', ref: `tag:${spec.tag}` }
    case 'snapshot':
      return { kind: 'existing', ref: spec.ref }
    case 'name':
      return { kind: 'image', reference: spec.name, noCache: inputs.noCache, deadlineMs }
  }
}
