// The service on a 3-master, 3-replica Redis Cluster on loopback (see topology-suite.ts).
import { keyLayoutTests, topologySuite } from './topology-suite.js';

keyLayoutTests();
topologySuite('cluster');
