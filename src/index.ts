import * as core from '@actions/core'
import { hello } from './x.ts'
core.info(hello())
