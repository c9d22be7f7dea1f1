import Retention
import Testing

/// What a registry sync reports and which changes need confirming; no database.
@Suite struct RegistryChangesTests {
    static func type(
        _ name: String = "conversations", min: RetentionInterval = .days(1), max: RetentionInterval = .years(1),
        predicate: String? = nil
    ) -> EntityType {
        EntityType(
            name: name, table: TableName(schema: "app", name: "conv"), key: ["id"], account: "account_id",
            clock: "ended_at", predicate: predicate,
            bounds: (try? IntervalBounds(default: min, minimum: min, maximum: max))!,
            blobs: [BlobReference(column: "rec", store: "blobs")])
    }

    static let store = BlobStore(
        name: "blobs", table: TableName(schema: "app", name: "blobs"), key: "id", account: "account_id")

    static func registry(_ types: [EntityType]) -> Registry { Registry(entityTypes: types, blobStores: [store]) }

    func confirmations(_ old: Registry, _ new: Registry) -> [String] {
        RegistryChanges.between(old, new).filter(\.needsConfirmation).map(\.text)
    }

    @Test func sameRegistryHasNoChanges() {
        #expect(RegistryChanges.between(Self.registry([Self.type()]), Self.registry([Self.type()])).isEmpty)
    }

    @Test func removingATypeNeedsConfirming() {
        let changes = confirmations(Self.registry([Self.type(), Self.type("calls")]), Self.registry([Self.type()]))
        #expect(changes.count == 1)
        #expect(changes.first?.contains("entity type calls is no longer configured") == true)
    }

    @Test func addingATypeDoesNot() {
        let old = Self.registry([Self.type()])
        let new = Self.registry([Self.type(), Self.type("calls")])
        #expect(confirmations(old, new).isEmpty)
        #expect(RegistryChanges.between(old, new).map(\.text).contains { $0.contains("calls is added") })
    }

    @Test(arguments: [
        // (old min, new min, needs confirming)
        (RetentionInterval.days(1), RetentionInterval.hours(12), true),
        (.days(1), .days(2), false),
        (.months(1), .days(30), true),  // equal as PostgreSQL compares, but the cutoff moves
        (.days(30), .months(1), true),
        (.years(1), .months(12), false),  // the same interval written another way
    ])
    func loweringMinNeedsConfirming(_ old: RetentionInterval, _ new: RetentionInterval, _ confirm: Bool) {
        let changes = confirmations(Self.registry([Self.type(min: old)]), Self.registry([Self.type(min: new)]))
        #expect(changes.isEmpty != confirm, "\(old) → \(new): \(changes)")
    }

    @Test(arguments: [
        (RetentionInterval.years(1), RetentionInterval.years(2), true),
        (.years(1), .months(6), true),  // lowered: accounts above it are clamped, their data goes sooner
        (.months(12), .days(360), true),
        (.days(365), .years(1), true),  // 1y compares as 360 days: lowered
    ])
    func changingMaxNeedsConfirming(_ old: RetentionInterval, _ new: RetentionInterval, _ confirm: Bool) {
        let changes = confirmations(Self.registry([Self.type(max: old)]), Self.registry([Self.type(max: new)]))
        #expect(changes.isEmpty != confirm, "\(old) → \(new): \(changes)")
    }

    @Test func removingABlobReferenceNeedsConfirming() {
        var without = Self.type()
        without.blobs = []
        let changes = confirmations(Self.registry([Self.type()]), Self.registry([without]))
        #expect(changes.count == 1)
        #expect(changes.first?.contains("blob reference app.conv.rec (store blobs) is removed") == true)
        #expect(confirmations(Self.registry([without]), Self.registry([Self.type()])).isEmpty)
    }

    @Test func structuralChangesNeedConfirming() {
        let old = Self.registry([Self.type()])
        var predicate = Self.type()
        predicate.predicate = "status = 'closed'"
        var clock = Self.type()
        clock.clock = "created_at"
        var table = Self.type()
        table.table = TableName(schema: "app", name: "other")
        var keepOnly = Self.type()
        keepOnly.deletes = false
        var child = Self.type()
        child.children = [ChildTable(table: TableName(schema: "app", name: "msg"), key: ["id"], parent: ["conv_id"])]
        for new in [predicate, clock, table, child] {
            #expect(!confirmations(old, Self.registry([new])).isEmpty, "\(new)")
        }
        #expect(confirmations(old, Self.registry([keepOnly])).isEmpty)
        #expect(confirmations(Self.registry([keepOnly]), old).count == 1)
    }

    @Test func removingABlobStoreOrShorteningGraceNeedsConfirming() {
        var type = Self.type()
        type.blobs = []
        #expect(
            confirmations(Self.registry([type]), Registry(entityTypes: [type])).first?.contains(
                "blob store blobs is no longer configured") == true)
        var quick = Self.store
        quick.grace = .seconds(3600)
        #expect(
            confirmations(Self.registry([Self.type()]), Registry(entityTypes: [Self.type()], blobStores: [quick]))
                .count == 1)
    }

    @Test func settingsAloneAreSafe() {
        var busy = Self.type()
        busy.batchSize = 50
        busy.lanes = 4
        let changes = RegistryChanges.between(Self.registry([Self.type()]), Self.registry([busy]))
        #expect(changes.count == 1 && !changes[0].needsConfirmation)
    }
}
