/** Where on GitHub the preview's comment, deployment and links belong. */

export interface RepositoryRef {
  owner: string
  repo: string
}

export interface PullRequestRef extends RepositoryRef {
  number: number
}

export interface WorkflowRunRef {
  /** GITHUB_RUN_ID */
  id: number
  /** GITHUB_RUN_ATTEMPT (1 when absent). */
  attempt?: number
}
