// Renders deploy/k8s kustomizations without kustomize (not installed here,
// and the test must run offline). It supports exactly these kustomize
// features, and throws UnsupportedKustomizeFeature on anything else, so a
// kustomization that starts using more fails the test instead of being
// rendered differently from `kubectl kustomize`:
//
// - `apiVersion: kustomize.config.k8s.io/v1beta1`, `kind: Kustomization`;
// - `resources`: local YAML files and local directories holding a
//   kustomization (rendered recursively); no URLs, no remote bases;
// - `patches`: entries with `path` only (no `target`, no inline `patch`),
//   each file one strategic-merge patch naming its object by apiVersion,
//   kind and metadata.name (an exact match is required, as kustomize does);
// - `namespace`: sets metadata.namespace on every namespaced object, and
//   renames every Namespace object to it, as kustomize's namespace
//   transformer does (its field specs: metadata/namespace, and metadata/name
//   of kind Namespace; the others concern kinds outside KINDS, the only kinds
//   allowed, whose scope is known);
// - `images`: `name` with `newName`, `newTag` and/or `digest`, applied to
//   every `containers` / `initContainers` image of that name.
//
// Transformers run in kustomize's order: patches, then namespace, then images.
//
// The strategic merge is the small subset these patches need: maps merge
// key by key; lists merge by their Kubernetes merge key only for the fields
// in MERGE_KEYS (containers, initContainers, env and volumes by name,
// volumeMounts by mountPath), the patch's items first, then the others, as
// kustomize orders them; the lists in REPLACED_LISTS, which kustomize
// replaces whole (no merge key), are replaced. Any other list in a patch, a
// null (deletion), or a `$patch` / `$setElementOrder` directive throws.
//
// Where kubectl is installed, test/k8s.test.ts also compares the output with
// `kubectl kustomize` (kustomize built into kubectl).
//
// Every YAML file must also mean the same in YAML 1.1 (what kubectl's
// decoder reads) and YAML 1.2 (what kustomize's reads): `on`, `yes` or a
// leading-zero number would not, and throw here.
import { existsSync, readFileSync, statSync } from 'node:fs'
import { join, relative, resolve } from 'node:path'
import { parseAllDocuments } from 'yaml'

export type Json = string | number | boolean | null | Json[] | { [key: string]: Json }
export type JsonObject = { [key: string]: Json }

export interface K8sObject {
  apiVersion: string
  kind: string
  metadata: { name: string, namespace?: string, labels?: Record<string, string>, annotations?: Record<string, string> }
  [key: string]: Json | undefined | K8sObject['metadata']
}

export class UnsupportedKustomizeFeature extends Error {}

/** The kinds the renderer knows the scope of (namespaced or not). */
export const KINDS: Record<string, { namespaced: boolean }> = {
  'v1/Namespace': { namespaced: false },
  'v1/ServiceAccount': { namespaced: true },
  'v1/Service': { namespaced: true },
  'v1/Secret': { namespaced: true },
  'v1/ConfigMap': { namespaced: true },
  'apps/v1/Deployment': { namespaced: true },
  'batch/v1/Job': { namespaced: true },
  'autoscaling/v2/HorizontalPodAutoscaler': { namespaced: true },
  'policy/v1/PodDisruptionBudget': { namespaced: true },
  'networking.k8s.io/v1/Ingress': { namespaced: true },
  'networking.k8s.io/v1/NetworkPolicy': { namespaced: true },
  'postgresql.cnpg.io/v1/Cluster': { namespaced: true },
  'postgresql.cnpg.io/v1/Pooler': { namespaced: true }
}

const KUSTOMIZATION_FIELDS = new Set(['apiVersion', 'kind', 'resources', 'namespace', 'images', 'patches'])
const IMAGE_FIELDS = new Set(['name', 'newName', 'newTag', 'digest'])
const MERGE_KEYS: Record<string, string> = { containers: 'name', initContainers: 'name', env: 'name', volumes: 'name', volumeMounts: 'mountPath' }
/** Lists without a merge key in the Kubernetes schema: a strategic merge replaces them whole. */
const REPLACED_LISTS = new Set(['rules', 'tls', 'hosts', 'paths', 'command', 'args', 'drop'])

export const isObject = (value: unknown): value is JsonObject => typeof value === 'object' && value !== null && !Array.isArray(value)

export const clone = <T>(value: T): T => structuredClone(value)

/** Parses every document of a YAML file, refusing anything YAML 1.1 and 1.2 read differently. */
export function readYamlDocuments (file: string): Json[] {
  const text = readFileSync(file, 'utf8')
  const read = (version: '1.1' | '1.2'): Json[] => parseAllDocuments(text, { version }).flatMap((doc) => {
    const problem = doc.errors[0] ?? doc.warnings[0]
    if (problem !== undefined) throw new Error(`${file}: ${problem.message}`)
    const value = doc.toJS() as Json
    return value === null || value === undefined ? [] : [value]
  })
  const yaml12 = read('1.2')
  if (JSON.stringify(read('1.1')) !== JSON.stringify(yaml12)) {
    throw new UnsupportedKustomizeFeature(`${file}: reads differently as YAML 1.1 and 1.2 (quote values like on/off/yes/no, write numbers without a leading zero)`)
  }
  return yaml12
}

const idOf = (obj: K8sObject) => `${obj.apiVersion}/${obj.kind}/${obj.metadata.namespace ?? ''}/${obj.metadata.name}`

function asK8sObject (value: Json, where: string): K8sObject {
  if (!isObject(value) || typeof value.apiVersion !== 'string' || typeof value.kind !== 'string' ||
      !isObject(value.metadata) || typeof value.metadata.name !== 'string') {
    throw new Error(`${where}: not a Kubernetes object (apiVersion, kind and metadata.name are required)`)
  }
  if (KINDS[`${value.apiVersion}/${value.kind}`] === undefined) {
    throw new UnsupportedKustomizeFeature(`${where}: kind ${value.apiVersion}/${value.kind} is not one the renderer knows the scope of (KINDS)`)
  }
  return value as unknown as K8sObject
}

function strategicMerge (target: Json | undefined, patch: Json, path: string): Json {
  if (patch === null) throw new UnsupportedKustomizeFeature(`${path}: null (a strategic-merge deletion) is not supported`)
  if (isObject(patch)) {
    const result: JsonObject = isObject(target) ? clone(target) : {}
    for (const [key, value] of Object.entries(patch)) {
      if (key.startsWith('$')) throw new UnsupportedKustomizeFeature(`${path}.${key}: strategic-merge directives are not supported`)
      result[key] = strategicMerge(result[key], value, `${path}.${key}`)
    }
    return result
  }
  if (Array.isArray(patch)) {
    const field = path.slice(path.lastIndexOf('.') + 1)
    const mergeKey = MERGE_KEYS[field]
    if (mergeKey !== undefined) {
      // As kustomize orders them: the patch's items first (merged into the
      // item with the same key, if any), then the other items as they were.
      const original = Array.isArray(target) ? target : []
      const keyOf = (item: Json) => isObject(item) ? item[mergeKey] : undefined
      const merged = patch.map((item) => {
        if (typeof keyOf(item) !== 'string') throw new Error(`${path}: every item needs its merge key ${mergeKey}`)
        const existing = original.find((o) => keyOf(o) === keyOf(item))
        return strategicMerge(existing, item, `${path}[${mergeKey}=${String(keyOf(item))}]`)
      })
      const patched = new Set(patch.map(keyOf))
      return [...merged, ...original.filter((item) => !patched.has(keyOf(item))).map(clone)]
    }
    if (REPLACED_LISTS.has(field)) return clone(patch)
    throw new UnsupportedKustomizeFeature(`${path}: a list the renderer does not know how kustomize merges (MERGE_KEYS, REPLACED_LISTS)`)
  }
  return patch
}

function applyPatch (objects: K8sObject[], file: string): void {
  const documents = readYamlDocuments(file)
  if (documents.length !== 1) throw new UnsupportedKustomizeFeature(`${file}: a patch file must hold exactly one document`)
  const patch = asK8sObject(documents[0] as Json, file)
  const matches = objects.filter((obj) => obj.apiVersion === patch.apiVersion && obj.kind === patch.kind &&
    obj.metadata.name === patch.metadata.name && (patch.metadata.namespace === undefined || obj.metadata.namespace === patch.metadata.namespace))
  if (matches.length !== 1) throw new Error(`${file}: the patch matches ${matches.length} objects (kustomize requires exactly one)`)
  const target = matches[0] as K8sObject
  const merged = strategicMerge(target as unknown as Json, patch as unknown as Json, `${patch.kind}/${patch.metadata.name}`) as JsonObject
  for (const key of Object.keys(target)) delete target[key]
  Object.assign(target, merged)
}

/** `registry:5000/name:tag@sha256:…` -> name, tag, digest. */
export function parseImage (image: string): { name: string, tag?: string, digest?: string } {
  const at = image.indexOf('@')
  const withoutDigest = at === -1 ? image : image.slice(0, at)
  const digest = at === -1 ? undefined : image.slice(at + 1)
  const colon = withoutDigest.lastIndexOf(':')
  const tagged = colon > withoutDigest.lastIndexOf('/')
  const result: { name: string, tag?: string, digest?: string } = { name: tagged ? withoutDigest.slice(0, colon) : withoutDigest }
  if (tagged) result.tag = withoutDigest.slice(colon + 1)
  if (digest !== undefined) result.digest = digest
  return result
}

function setImages (value: Json, entry: { name: string, newName?: string, newTag?: string, digest?: string }): void {
  if (Array.isArray(value)) { for (const item of value) setImages(item, entry); return }
  if (!isObject(value)) return
  for (const [key, child] of Object.entries(value)) {
    if ((key === 'containers' || key === 'initContainers') && Array.isArray(child)) {
      for (const container of child) {
        if (!isObject(container) || typeof container.image !== 'string') continue
        const image = parseImage(container.image)
        if (image.name !== entry.name) continue
        const name = entry.newName ?? image.name
        const tag = entry.newTag ?? (entry.digest === undefined ? image.tag : undefined)
        const digest = entry.digest ?? (entry.newTag === undefined ? image.digest : undefined)
        container.image = name + (tag !== undefined ? `:${tag}` : '') + (digest !== undefined ? `@${digest}` : '')
      }
    }
    setImages(child, entry)
  }
}

function stringList (value: Json | undefined, where: string): string[] {
  if (value === undefined) return []
  if (!Array.isArray(value) || !value.every((item) => typeof item === 'string')) throw new Error(`${where}: must be a list of strings`)
  return value as string[]
}

/** Renders the kustomization in `dir` (absolute or relative to the working directory). */
export function render (dir: string): K8sObject[] {
  const root = resolve(dir)
  const file = join(root, 'kustomization.yaml')
  for (const other of ['kustomization.yml', 'Kustomization']) {
    if (existsSync(join(root, other))) throw new UnsupportedKustomizeFeature(`${root}: only kustomization.yaml is supported, found ${other}`)
  }
  const [kustomization, ...rest] = readYamlDocuments(file)
  if (!isObject(kustomization) || rest.length > 0) throw new Error(`${file}: must be one mapping`)
  for (const key of Object.keys(kustomization)) {
    if (!KUSTOMIZATION_FIELDS.has(key)) throw new UnsupportedKustomizeFeature(`${file}: field ${key} is not supported by the test's renderer`)
  }
  if (kustomization.apiVersion !== 'kustomize.config.k8s.io/v1beta1' || kustomization.kind !== 'Kustomization') {
    throw new UnsupportedKustomizeFeature(`${file}: apiVersion kustomize.config.k8s.io/v1beta1 and kind Kustomization are required`)
  }

  const objects: K8sObject[] = []
  for (const resource of stringList(kustomization.resources, `${file} resources`)) {
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(resource) || /^(github\.com|gitlab\.com|bitbucket\.org)\//.test(resource)) {
      throw new UnsupportedKustomizeFeature(`${file}: remote resource ${resource} is not supported`)
    }
    const path = resolve(root, resource)
    if (statSync(path).isDirectory()) objects.push(...render(path))
    else objects.push(...readYamlDocuments(path).map((doc, i) => asK8sObject(doc, `${relative(root, path)} document ${i + 1}`)))
  }
  const ids = objects.map(idOf)
  const duplicate = ids.find((id, i) => ids.indexOf(id) !== i)
  if (duplicate !== undefined) throw new Error(`${file}: ${duplicate} is defined twice`)

  const patches = kustomization.patches ?? []
  if (!Array.isArray(patches)) throw new Error(`${file}: patches must be a list`)
  for (const patch of patches) {
    if (!isObject(patch) || Object.keys(patch).join() !== 'path' || typeof patch.path !== 'string') {
      throw new UnsupportedKustomizeFeature(`${file}: a patch must be {path: file} alone (no target, no inline patch)`)
    }
    applyPatch(objects, resolve(root, patch.path))
  }

  if (kustomization.namespace !== undefined) {
    if (typeof kustomization.namespace !== 'string') throw new Error(`${file}: namespace must be a string`)
    for (const obj of objects) {
      if (KINDS[`${obj.apiVersion}/${obj.kind}`]?.namespaced === true) obj.metadata.namespace = kustomization.namespace
      if (obj.apiVersion === 'v1' && obj.kind === 'Namespace') obj.metadata.name = kustomization.namespace
    }
  }

  const images = kustomization.images ?? []
  if (!Array.isArray(images)) throw new Error(`${file}: images must be a list`)
  for (const image of images) {
    if (!isObject(image) || typeof image.name !== 'string' || Object.keys(image).some((key) => !IMAGE_FIELDS.has(key)) ||
        Object.values(image).some((value) => typeof value !== 'string')) {
      throw new UnsupportedKustomizeFeature(`${file}: an images entry takes only name, newName, newTag and digest, as strings`)
    }
    for (const obj of objects) setImages(obj as unknown as Json, image as { name: string })
  }
  return objects
}
