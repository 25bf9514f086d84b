/**
 * Entry point for both `main:` and `post:` (one bundle). It only dispatches. It ends the process
 * explicitly so that idle keep-alive sockets or an abandoned retry timer cannot hold the step open.
 */
import { run as runMain } from './main.ts'
import { run as runPost } from './post.ts'
import { isPost } from './state.ts'

await (isPost() ? runPost() : runMain())
process.exit()
