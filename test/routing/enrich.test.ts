import { describe, expect, it } from 'vitest';
import type { EnrichmentConfig } from '../../src/lib/config.js';
import { applyEnrichments, classifyEnrichmentValue, enrichmentValue } from '../../src/lib/routing/enrich.js';
import type { RouteTwin } from '../../src/lib/routing/evaluate.js';

const twin: RouteTwin = {
  tags: { location: 'Plant 4', deploymentLocation: { building: 43, room: 503 }, floor: 2, active: true, gone: null },
  properties: {
    desired: { telemetryConfig: { sendFrequency: '5m' } },
    reported: { batteryLevel: 55 },
  },
};

const ENRICHMENTS: EnrichmentConfig[] = [
  { key: 'hub', value: '$iothubname', endpoints: ['events', 'criticalQueue', 'archive'] },
  { key: 'location', value: '$twin.tags.location', endpoints: ['criticalQueue', 'archive'] },
  { key: 'customer', value: 'contoso', endpoints: ['archive'] },
];

describe('classifyEnrichmentValue (message enrichments overview: static, $iothubname, $twin.tags / properties.desired / reported)', () => {
  it.each([
    ['$iothubname', { kind: 'iothubname' }],
    ['$twin.tags.location', { kind: 'twin', section: 'tags', path: ['location'] }],
    ['$twin.tags.deploymentLocation.building', { kind: 'twin', section: 'tags', path: ['deploymentLocation', 'building'] }],
    ['$twin.properties.desired.telemetryConfig.sendFrequency', { kind: 'twin', section: 'desired', path: ['telemetryConfig', 'sendFrequency'] }],
    ['$twin.properties.reported.batteryLevel', { kind: 'twin', section: 'reported', path: ['batteryLevel'] }],
    ['contoso', { kind: 'static' }],
    ['$twin.tags', { kind: 'static' }],
    ['$twin.deviceId', { kind: 'static' }],
    ['$twin.properties.desired', { kind: 'static' }],
    ['$twin.tags..x', { kind: 'static' }],
    ['$body.Weather', { kind: 'static' }],
  ])('%s', (value, expected) => {
    expect(classifyEnrichmentValue(value)).toEqual(expected);
  });
});

describe('enrichmentValue', () => {
  const context = { iotHubName: 'contoso-hub', twin };

  it('"$iothubname" is the hub name, in any case', () => {
    expect(enrichmentValue('$iothubname', context)).toBe('contoso-hub');
    expect(enrichmentValue('$IoTHubName', context)).toBe('contoso-hub');
  });

  it('"$twin.tags.location" is the twin value; numbers and Booleans become text', () => {
    expect(enrichmentValue('$twin.tags.location', context)).toBe('Plant 4');
    expect(enrichmentValue('$twin.tags.floor', context)).toBe('2');
    expect(enrichmentValue('$twin.tags.active', context)).toBe('true');
    expect(enrichmentValue('$twin.tags.deploymentLocation.building', context)).toBe('43');
    expect(enrichmentValue('$twin.properties.desired.telemetryConfig.sendFrequency', context)).toBe('5m');
    expect(enrichmentValue('$twin.properties.reported.batteryLevel', context)).toBe('55');
  });

  it('a path that does not exist stamps the value text itself ("$twin.tags.location" example)', () => {
    expect(enrichmentValue('$twin.tags.missing', context)).toBe('$twin.tags.missing');
    expect(enrichmentValue('$twin.tags.gone', context)).toBe('$twin.tags.gone');
  });

  it('a path that resolves to an object stamps the value text ({"building": 43, "room": 503} example)', () => {
    expect(enrichmentValue('$twin.tags.deploymentLocation', context)).toBe('$twin.tags.deploymentLocation');
  });

  it('no twin (basic tier, or no twin for the device) stamps the value text', () => {
    expect(enrichmentValue('$twin.tags.location', { iotHubName: 'h' })).toBe('$twin.tags.location');
    expect(enrichmentValue('$twin.tags.location', { iotHubName: 'h', twin: null })).toBe('$twin.tags.location');
  });

  it('static values are stamped as they are', () => {
    expect(enrichmentValue('contoso', context)).toBe('contoso');
    expect(enrichmentValue('$twin.tags', context)).toBe('$twin.tags');
  });

  it('twin names match ignoring case, exact spelling first; inherited names never resolve', () => {
    expect(enrichmentValue('$twin.tags.LOCATION', context)).toBe('Plant 4');
    expect(enrichmentValue('$twin.tags.constructor', context)).toBe('$twin.tags.constructor');
  });
});

describe('applyEnrichments: only to messages for the endpoints listed', () => {
  const context = { iotHubName: 'contoso-hub', twin };

  it('events gets only the hub name', () => {
    expect(applyEnrichments(ENRICHMENTS, 'events', context)).toEqual({ hub: 'contoso-hub' });
  });

  it('criticalQueue gets the hub name and the location', () => {
    expect(applyEnrichments(ENRICHMENTS, 'criticalQueue', context)).toEqual({ hub: 'contoso-hub', location: 'Plant 4' });
  });

  it('archive gets all three', () => {
    expect(applyEnrichments(ENRICHMENTS, 'archive', context)).toEqual({ hub: 'contoso-hub', location: 'Plant 4', customer: 'contoso' });
  });

  it('without a twin the location is the literal "$twin.tags.location"', () => {
    expect(applyEnrichments(ENRICHMENTS, 'criticalQueue', { iotHubName: 'contoso-hub' })).toEqual({
      hub: 'contoso-hub',
      location: '$twin.tags.location',
    });
  });

  it('no enrichments, no properties', () => {
    expect(applyEnrichments([], 'events', context)).toEqual({});
  });

  it('a key such as "__proto__" stays an ordinary property', () => {
    const stamped = applyEnrichments([{ key: '__proto__', value: 'x', endpoints: ['events'] }], 'events', context);
    expect(Object.keys(stamped)).toEqual(['__proto__']);
    expect(Object.getPrototypeOf(stamped)).toBe(Object.prototype);
  });
});
