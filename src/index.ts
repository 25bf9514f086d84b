/**
 * Entry point for both `main:` and `post:` (one bundle). It only dispatches. It ends the process
 * explicitly (once the log is flushed) so that idle keep-alive sockets or an abandoned retry timer
 * cannot hold the step open.
 */
import './memory.ts'
import * as core from '@actions/core'
import { errorMessage } from './errors.ts'
import { exitAfterFlush } from './exit.ts'
import { run as runMain } from './main.ts'
import { run as runPost } from './post.ts'
import { isPost } from './state.ts'

try {
  await (isPost() ? runPost() : runMain())
} catch (error) {
  // Only a bug gets here; the post step must still never fail the job.
  if (isPost()) core.warning(`Post step: ${errorMessage(error)}`)
  else core.setFailed(errorMessage(error))
}
await exitAfterFlush()
