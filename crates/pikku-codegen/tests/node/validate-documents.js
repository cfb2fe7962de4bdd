// Checks the generated documents against their specifications: asyncapi.json against the AsyncAPI 3.0.0 JSON
// Schema (from @asyncapi/specs), channels.schema.json against the JSON Schema 2020-12 meta-schema. Run by
// tests/golden.rs with the directory holding the generated files; prints {"asyncapi":[...],"schema":[...]}
// with the errors found (empty lists when both are valid).
const fs = require('node:fs')
const path = require('node:path')
const Ajv = require('ajv')
const Ajv2020 = require('ajv/dist/2020')
const addFormats = require('ajv-formats')

const dir = process.argv[2]
const read = (name) => JSON.parse(fs.readFileSync(path.join(dir, name), 'utf8'))

const spec = require('@asyncapi/specs/schemas/3.0.0-without-$id.json')
const ajv = new Ajv({ strict: false, allErrors: true })
addFormats(ajv)
const validateAsyncApi = ajv.compile(spec)
const asyncapi = validateAsyncApi(read('asyncapi.json')) ? [] : validateAsyncApi.errors.map((e) => `${e.instancePath} ${e.message}`)

const ajv2020 = new Ajv2020({ strict: false, allErrors: true, validateFormats: false })
const channels = read('channels.schema.json')
const schema = []
if (!ajv2020.validateSchema(channels)) schema.push(ajv2020.errorsText(ajv2020.errors))
try {
  ajv2020.compile(channels)
} catch (error) {
  schema.push(String(error))
}
process.stdout.write(JSON.stringify({ asyncapi: asyncapi.slice(0, 20), schema }) + '\n')
