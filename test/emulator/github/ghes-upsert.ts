// Upserts a sticky comment from a child process whose environment is set before @actions/github is
// imported, as on a runner: the library reads GITHUB_API_URL once, at import time.
// Usage: node ghes-upsert.ts OWNER REPO NUMBER NAME BODY (token in TEST_GITHUB_TOKEN); prints the result as JSON.
import { getOctokit } from '@actions/github'
import { upsertStickyComment } from '../../../src/github/sticky-comment.ts'

const [owner = '', repo = '', number = '0', name = '', body = ''] = process.argv.slice(2)
const result = await upsertStickyComment(getOctokit(process.env['TEST_GITHUB_TOKEN'] ?? ''), { owner, repo, number: Number(number) }, name, body)
process.stdout.write(JSON.stringify(result))
