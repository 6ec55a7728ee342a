/**
 * Host architectures in one vocabulary: Go's GOARCH names, the ones
 * Kubernetes' `kubernetes.io/arch` label and Go agents report (SPEC §8). The
 * names other tools use for the same machines (`uname -m`, Node's
 * `process.arch`, Debian's) are accepted and stored as these, so a mixed
 * fleet filters consistently. Any other name is kept as given.
 */
const ALIASES: Record<string, readonly string[]> = {
  amd64: ["x86_64", "x86-64", "x64"],
  arm64: ["aarch64", "arm64v8"],
  "386": ["i386", "i486", "i586", "i686", "x86", "ia32"],
  arm: ["armv6l", "armv7l", "armv8l", "armhf", "armel"],
  ppc64le: ["ppc64el", "powerpc64le"],
  s390x: [],
  riscv64: [],
  loong64: ["loongarch64"],
  mips64le: ["mips64el"],
  mipsle: ["mipsel"],
};

const CANONICAL = new Map<string, string>(
  Object.entries(ALIASES).flatMap(([canonical, aliases]) => [canonical, ...aliases].map((name) => [name, canonical] as const)),
);

/** Every name (lowercase) that stands for a canonical architecture, with the canonical one it stands for. */
export const ARCH_NAMES: ReadonlyMap<string, string> = CANONICAL;

/** The canonical name of an architecture (`x86_64` → `amd64`, `AArch64` → `arm64`); unknown names come back as given, trimmed. */
export function canonicalArch(name: string): string {
  const trimmed = name.trim();
  return CANONICAL.get(trimmed.toLowerCase()) ?? trimmed;
}
