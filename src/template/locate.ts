/**
 * Positions inside the profile (a `data:` leaf, a variable's default) and display names for
 * template files, so every rendering problem names a file:line:column the user can open.
 * Profile files are parsed again only when a problem needs a position.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { SourceLocation } from '../errors.js';
import { formatPath, parseProfileText, type ParsedFile, type PathSegment } from '../profile/source.js';
import type { Profile } from '../profile/types.js';

export type ProfileLocator = (segments: readonly PathSegment[]) => SourceLocation & { path: string };

/** A path as users read it, relative to the working directory when it is inside it. */
export function displayPath(file: string, cwd: string): string {
  const rel = path.relative(cwd, file);
  return rel && !rel.startsWith('..') && !path.isAbsolute(rel) ? rel : file;
}

/** Locate a path of the profile: in the file of the `extends` chain that sets it, child first. */
export function createProfileLocator(profile: Pick<Profile, 'source'>, cwd = process.cwd()): ProfileLocator {
  let parsed: ParsedFile[] | undefined;
  const files = () => {
    parsed ??= profile.source.files.flatMap((file) => {
      try {
        return [parseProfileText(readFileSync(file, 'utf8'), displayPath(file, cwd))];
      } catch {
        return [];
      }
    });
    return parsed;
  };
  return (segments) => {
    const dotted = formatPath(segments);
    const owner = files().find((f) => f.has(segments));
    if (!owner) return { path: dotted, ...(files()[0] ? { file: files()[0]!.file } : {}) };
    return { ...owner.locate(segments), path: dotted };
  };
}
