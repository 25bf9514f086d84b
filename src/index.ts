// Placeholder entry until main/post land.
export {}
