/**
 * The seeded pseudo-random source of the chaos test. One seed decides everything about a run, so a
 * failing run is replayed by its seed alone. Each concern (payload, faults, signal) draws from its
 * own stream derived from the seed, so that changing how faults are drawn does not change the
 * payload of a seed, and the other way round.
 */

/** splitmix32: spreads neighbouring seeds (base seed + i) over the whole state space. */
function mix(value: number): number {
  let z = (value + 0x9e3779b9) | 0
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b)
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35)
  return (z ^ (z >>> 16)) >>> 0
}

function hashLabel(label: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < label.length; i++) h = Math.imul(h ^ label.charCodeAt(i), 0x01000193)
  return h >>> 0
}

export class Prng {
  #state: number

  constructor(seed: number) {
    this.#state = mix(seed >>> 0)
  }

  /** An independent stream for one concern of the same seed. */
  static stream(seed: number, label: string): Prng {
    return new Prng(mix(seed >>> 0) ^ hashLabel(label))
  }

  /** mulberry32: a uniform float in [0, 1). */
  next(): number {
    this.#state = (this.#state + 0x6d2b79f5) | 0
    let t = this.#state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }

  /** An integer in [min, max], both included. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1))
  }

  chance(probability: number): boolean {
    return this.next() < probability
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('pick from an empty list')
    return items[Math.floor(this.next() * items.length)] as T
  }

  /** Picks by weight: `[[weight, value], …]`. */
  weighted<T>(choices: readonly (readonly [number, T])[]): T {
    const total = choices.reduce((sum, [weight]) => sum + weight, 0)
    let roll = this.next() * total
    for (const [weight, value] of choices) {
      roll -= weight
      if (roll < 0) return value
    }
    return (choices.at(-1) as readonly [number, T])[1]
  }

  /** An integer spread evenly over orders of magnitude between min and max (sizes, offsets). */
  logUniform(min: number, max: number): number {
    const low = Math.log(Math.max(1, min))
    const high = Math.log(Math.max(1, max))
    return Math.min(max, Math.max(min, Math.round(Math.exp(low + this.next() * (high - low)))))
  }
}
