import { describe, expect, it } from 'vitest';
import { parseRoutingConfig } from '../../src/lib/config.js';
import {
  checkArmTemplate,
  dependsOnId,
  extensionDependsOnId,
  idOfResource,
  lit,
  literal,
  resourceName,
  resourceScope,
  splitArguments,
  type ArmResource,
  type ArmTemplate,
} from '../../src/lib/infra/arm.js';
import { buildArmTemplate } from '../../src/lib/infra/template.js';

function template(): ArmTemplate {
  const problems: string[] = [];
  const routing = parseRoutingConfig(
    {
      iotHubName: 'contoso-routing-hub',
      routes: [{ name: 'CriticalRoute', condition: 'level="critical"', endpoint: 'criticalQueue' }],
      enrichments: [{ key: 'iothubname', value: '$iothubname', endpoints: ['events', 'archive'] }],
    },
    problems,
  );
  expect(problems).toEqual([]);
  // A deep copy each time: the tests below break it on purpose.
  return JSON.parse(JSON.stringify(buildArmTemplate(routing))) as ArmTemplate;
}

function find(t: ArmTemplate, type: string): ArmResource & Record<string, unknown> {
  const found = t.resources.find((r) => r.type === type);
  if (found === undefined) throw new Error(`no ${type}`);
  return found as ArmResource & Record<string, unknown>;
}

describe('ARM expressions', () => {
  it('quotes literals the ARM way and escapes a leading bracket in plain strings', () => {
    expect(lit("it's")).toBe("'it''s'");
    expect(literal('[not an expression]')).toBe('[[not an expression]');
    expect(literal('plain')).toBe('plain');
  });

  it('splits call arguments at top-level commas only', () => {
    expect(splitArguments("'{0}/{1}', variables('a'), concat('x, y', f(1, 2)), 'it''s, fine'")).toEqual([
      "'{0}/{1}'",
      "variables('a')",
      "concat('x, y', f(1, 2))",
      "'it''s, fine'",
    ]);
    expect(splitArguments('')).toEqual([]);
  });

  it('writes names, scopes and ids of nested and extension resources consistently', () => {
    const queue = { type: 'Microsoft.ServiceBus/namespaces/queues', parts: ["variables('ns')", "'critical'"] };
    expect(resourceName(queue)).toBe("[format('{0}/{1}', variables('ns'), 'critical')]");
    expect(resourceScope(queue)).toBe("[format('Microsoft.ServiceBus/namespaces/{0}/queues/{1}', variables('ns'), 'critical')]");
    expect(idOfResource({ type: queue.type, apiVersion: '2021-11-01', name: resourceName(queue) })).toBe(dependsOnId(queue));
    expect(idOfResource({ type: queue.type, apiVersion: '2021-11-01', name: 'ns1/critical' })).toBe(
      "[resourceId('Microsoft.ServiceBus/namespaces/queues', 'ns1', 'critical')]",
    );
    const role = { type: 'Microsoft.Authorization/roleAssignments', apiVersion: '2022-04-01', name: "[guid('a')]", scope: resourceScope(queue) };
    expect(idOfResource(role)).toBe(extensionDependsOnId(queue, role.type, "guid('a')"));
  });
});

describe('checkArmTemplate', () => {
  it('finds nothing wrong with a generated template', () => {
    expect(checkArmTemplate(template())).toEqual([]);
  });

  it('finds a dependsOn that names no resource of the template', () => {
    const t = template();
    const site = find(t, 'Microsoft.Web/sites');
    site['dependsOn'] = [...(site['dependsOn'] as string[]), "[resourceId('Microsoft.KeyVault/vaults', 'missing')]"];
    expect(checkArmTemplate(t)).toEqual([expect.stringContaining("depends on \"[resourceId('Microsoft.KeyVault/vaults', 'missing')]\", which is no resource of the template")]);
  });

  it('finds dependency cycles', () => {
    const t = template();
    find(t, 'Microsoft.Storage/storageAccounts')['dependsOn'] = ["[resourceId('Microsoft.Web/sites', variables('functionAppName'))]"];
    expect(checkArmTemplate(t)).toEqual([expect.stringMatching(/^dependency cycle: resources\[\d+\] -> .* -> resources\[\d+\]$/)]);
  });

  it('finds undeclared and unused parameters and variables', () => {
    const t = template();
    delete t.variables['criticalQueueName'];
    t.parameters['unused'] = { type: 'string', defaultValue: 'x', metadata: { description: 'nobody reads it' } };
    t.variables['leftover'] = 'x';
    t.parameters['iotHubCapacity'] = { type: 'int', defaultValue: 'one' as unknown as number, metadata: { description: 'wrong type' } };
    const problems = checkArmTemplate(t);
    expect(problems).toContain("variables('criticalQueueName') is used but not declared");
    expect(problems).toContain('parameter unused is declared but never used');
    expect(problems).toContain('variable leftover is declared but never used');
    expect(problems).toContain('parameter iotHubCapacity: defaultValue does not have type int');
  });

  it('finds resources without type, api version or name, and resources declared twice', () => {
    const t = template();
    const storage = find(t, 'Microsoft.Storage/storageAccounts');
    t.resources.push({ ...storage });
    t.resources.push({ type: 'Microsoft.Storage/storageAccounts', apiVersion: 'latest', name: 'other' });
    t.resources.push({ type: 'storage', apiVersion: '2023-05-01', name: 'third' });
    const problems = checkArmTemplate(t);
    expect(problems).toEqual(
      expect.arrayContaining([
        expect.stringContaining('the same resource is declared twice'),
        expect.stringContaining('(Microsoft.Storage/storageAccounts other): no valid apiVersion'),
        expect.stringContaining('(storage third): no valid type'),
      ]),
    );
  });

  it('finds IoT Hub routes and enrichments that name endpoints the hub does not have', () => {
    const t = template();
    const routing = (find(t, 'Microsoft.Devices/IotHubs')['properties'] as { routing: Record<string, unknown> }).routing as {
      routes: Array<{ endpointNames: string[] }>;
      enrichments: Array<{ endpointNames: string[] }>;
      endpoints: { serviceBusQueues: Array<{ name: string }> };
    };
    routing.routes[0]!.endpointNames = ['CriticalQueue'];
    routing.enrichments[0]!.endpointNames = ['events', 'Archive'];
    routing.endpoints.serviceBusQueues[0]!.name = 'events';
    const problems = checkArmTemplate(t);
    expect(problems).toEqual(
      expect.arrayContaining([
        expect.stringContaining('routes[0] (CriticalRoute) names unknown endpoint "CriticalQueue"'),
        expect.stringContaining('enrichments[0] (iothubname) names unknown endpoint "Archive"'),
        expect.stringContaining('endpoint name "events" is reserved by IoT Hub'),
      ]),
    );
  });

  it('rejects what is not a template at all', () => {
    expect(checkArmTemplate([])).toEqual(['the template is not a JSON object']);
    expect(checkArmTemplate({ resources: [] })).toEqual(
      expect.arrayContaining(['the template has no "$schema"', 'the template has no "parameters"', 'the template has no "outputs"']),
    );
  });
});
