import neostandard from 'neostandard'

export default neostandard({
  ts: true,
  ignores: ['dist/**', 'node_modules/**', 'data/**', 'scratch/**', 'test-output/**', 'bench/results/**', '.tap/**', '.ci-node24/**']
})
