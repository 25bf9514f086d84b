/** Identifies the action to the service (kept in step with package.json by a unit test). */
export const ACTION_VERSION = '0.1.0'
export const USER_AGENT = `remote-sandbox-action/${ACTION_VERSION} Node.js/${process.versions.node} ${process.platform}-${process.arch}`
