// The words of a prompt as a pack's vocabulary lists them, so the service can say which words
// a pack never saw in training (every word still encodes: the tokenizers are byte-level).

/** Lower-cased runs of letters, digits and inner apostrophes or hyphens, in order, each once. */
export function promptWords(prompt: string): string[] {
  const words =
    prompt
      .normalize('NFKC')
      .toLowerCase()
      .match(/[\p{L}\p{N}]+(?:['’-][\p{L}\p{N}]+)*/gu) ?? [];
  return [...new Set(words)];
}

/** The prompt's words that are not in the vocabulary; null when the pack lists no vocabulary. */
export function unknownWords(prompt: string, vocabulary: ReadonlySet<string> | undefined): string[] | null {
  if (!vocabulary) return null;
  return promptWords(prompt).filter((word) => !vocabulary.has(word));
}
