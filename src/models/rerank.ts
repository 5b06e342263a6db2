// The best `n` candidates by CLIP score, in a stable order: score descending, then candidate
// index ascending, so that equal scores never reorder between runs or chunk sizes.

export interface Scored {
  candidate: number;
  score: number;
}

function before(a: Scored, b: Scored): boolean {
  return a.score > b.score || (a.score === b.score && a.candidate < b.candidate);
}

/** Keeps the `n` best offers seen so far; `T` carries whatever travels with a candidate. */
export class BestN<T extends Scored> {
  private readonly kept: T[] = [];

  constructor(private readonly n: number) {}

  /** Whether an offer with this score and index would be kept now (to skip copying losers). */
  wouldKeep(entry: Scored): boolean {
    return this.kept.length < this.n || before(entry, this.kept[this.kept.length - 1]);
  }

  offer(entry: T): void {
    if (!this.wouldKeep(entry)) return;
    let pos = this.kept.length;
    while (pos > 0 && before(entry, this.kept[pos - 1])) pos--;
    this.kept.splice(pos, 0, entry);
    if (this.kept.length > this.n) this.kept.pop();
  }

  /** Best first. */
  result(): T[] {
    return [...this.kept];
  }
}
