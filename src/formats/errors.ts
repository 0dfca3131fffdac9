/** Errors of the format codecs, with where they point. */
export type PathSegment = string | number;

/** A value that has no form in the chosen format, at a path inside the `data:` tree. */
export class FormatError extends Error {
  constructor(
    message: string,
    readonly path: PathSegment[] = [],
  ) {
    super(message);
  }
}

/** Output that does not parse as its declared format; `line` is a line of the rendered output. */
export class OutputSyntaxError extends Error {
  constructor(
    message: string,
    readonly line?: number,
    readonly column?: number,
  ) {
    super(message);
  }
}
