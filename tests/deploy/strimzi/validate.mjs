// Validates Strimzi resources (a JSON array on stdin) against the schemas that
// @kubernetes-models/strimzi-kafka-operator compiles from Strimzi's own CRDs.
// Prints a JSON array of problems; exits 1 if there is any.
import { Kafka, KafkaNodePool, KafkaTopic, KafkaUser } from "@kubernetes-models/strimzi-kafka-operator/kafka.strimzi.io/v1beta2";

const kinds = { Kafka, KafkaNodePool, KafkaTopic, KafkaUser };
let input = "";
for await (const chunk of process.stdin) input += chunk;
const problems = [];
for (const doc of JSON.parse(input)) {
  const Model = kinds[doc.kind];
  if (!Model) {
    problems.push(`${doc.kind}: no Strimzi schema here`);
    continue;
  }
  try {
    new Model(doc).validate();
  } catch (error) {
    problems.push(`${doc.kind}/${doc.metadata?.name}: ${error.message}`);
  }
}
process.stdout.write(JSON.stringify(problems));
process.exit(problems.length ? 1 : 0);
