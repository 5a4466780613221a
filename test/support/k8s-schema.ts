// Validates rendered objects against the Kubernetes OpenAPI schemas
// (kubernetes-models) and the CloudNativePG CRD schemas
// (@kubernetes-models/cloudnative-pg), and reports fields the schema does
// not know. The generated validators accept unknown fields (the schemas do
// not say additionalProperties: false), so a misspelt `readinesProbe` would
// pass them, while the API server (kubectl's strict field validation)
// refuses it. To find those, validation runs on a Proxy that records which
// properties the validator reads: it reads every property its schema
// declares and every entry of a map, so a key of a validated object that
// was never read is one the schema does not have. (Inside a free-form field,
// which the validator does not enter, nothing is checked.)
import { Cluster, Pooler } from '@kubernetes-models/cloudnative-pg/postgresql.cnpg.io/v1'
import { Deployment } from 'kubernetes-models/apps/v1'
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2'
import { Job } from 'kubernetes-models/batch/v1'
import { Ingress, NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1'
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1'
import { ConfigMap, Namespace, Secret, Service, ServiceAccount } from 'kubernetes-models/v1'
import type { K8sObject } from './k8s-render.js'

interface ModelClass {
  new (data: never): { validate(): void, toJSON(): unknown }
  prototype: { validate(): void }
}

const MODELS: Record<string, ModelClass> = {
  'v1/Namespace': Namespace,
  'v1/ServiceAccount': ServiceAccount,
  'v1/Service': Service,
  'v1/Secret': Secret,
  'v1/ConfigMap': ConfigMap,
  'apps/v1/Deployment': Deployment,
  'batch/v1/Job': Job,
  'autoscaling/v2/HorizontalPodAutoscaler': HorizontalPodAutoscaler,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
  'networking.k8s.io/v1/Ingress': Ingress,
  'networking.k8s.io/v1/NetworkPolicy': NetworkPolicy,
  'postgresql.cnpg.io/v1/Cluster': Cluster,
  'postgresql.cnpg.io/v1/Pooler': Pooler
}

/** Schema errors and unknown fields of one object, as `Kind/name: …` lines; empty when valid. */
export function schemaProblems (obj: K8sObject): string[] {
  const where = `${obj.kind}/${obj.metadata.name}`
  const Model = MODELS[`${obj.apiVersion}/${obj.kind}`]
  if (Model === undefined) return [`${where}: no schema for ${obj.apiVersion} ${obj.kind}`]

  const readKeys = new Map<object, { keys: Set<string>, path: string }>()
  const proxies = new WeakMap<object, object>()
  const track = (value: unknown, path: string): unknown => {
    if (typeof value !== 'object' || value === null) return value
    const known = proxies.get(value)
    if (known !== undefined) return known
    const keys = new Set<string>()
    readKeys.set(value, { keys, path })
    const proxy = new Proxy(value, {
      get (target, key, receiver) {
        const child: unknown = Reflect.get(target, key, receiver)
        if (typeof key !== 'string' || !Object.hasOwn(target, key)) return child
        keys.add(key)
        return track(child, `${path}/${key}`)
      }
    })
    proxies.set(value, proxy)
    return proxy
  }

  const problems: string[] = []
  // The model fills in apiVersion and kind; JSON keeps plain data only.
  const data = JSON.parse(JSON.stringify(new Model(obj as never))) as object
  try {
    Model.prototype.validate.call(track(data, ''))
  } catch (err) {
    problems.push(`${where}: ${err instanceof Error ? err.message : String(err)}`)
  }
  for (const [target, { keys, path }] of readKeys) {
    if (Array.isArray(target)) continue
    for (const key of Object.keys(target)) {
      if (!keys.has(key)) problems.push(`${where}: unknown field ${path}/${key}`)
    }
  }
  return problems
}
