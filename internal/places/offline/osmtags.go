package offline

import (
	"slices"
	"strings"

	"github.com/paulmach/osm"
)

// The tables below are read-only.

// poiKeys are the OpenStreetMap keys that make a named feature a point of
// interest, in the order their Google types are listed.
var poiKeys = []string{
	"amenity", "shop", "tourism", "leisure", "historic", "office", "craft",
	"healthcare", "aeroway", "railway", "public_transport",
}

// onlyValues limits keys whose other values are not places people visit
// (runways, rail tracks, platforms).
var onlyValues = map[string][]string{
	"aeroway":          {"aerodrome"},
	"railway":          {"station", "halt"},
	"public_transport": {"station"},
}

// keyTypes are the Google types of any value of a key missing from tagTypes.
var keyTypes = map[string][]string{
	"shop":       {"store"},
	"historic":   {"tourist_attraction"},
	"healthcare": {"health"},
}

// tagTypes maps "key=value" OpenStreetMap tags to Google place types
// (https://developers.google.com/maps/documentation/places/web-service/legacy/supported_types).
var tagTypes = map[string][]string{
	"amenity=restaurant":       {"restaurant", "food"},
	"amenity=fast_food":        {"meal_takeaway", "restaurant", "food"},
	"amenity=food_court":       {"restaurant", "food"},
	"amenity=cafe":             {"cafe", "food"},
	"amenity=ice_cream":        {"food"},
	"amenity=bar":              {"bar"},
	"amenity=pub":              {"bar"},
	"amenity=biergarten":       {"bar"},
	"amenity=nightclub":        {"night_club"},
	"amenity=bank":             {"bank", "finance"},
	"amenity=atm":              {"atm", "finance"},
	"amenity=bureau_de_change": {"finance"},
	"amenity=money_transfer":   {"finance"},
	"amenity=pharmacy":         {"pharmacy", "health", "store"},
	"amenity=hospital":         {"hospital", "health"},
	"amenity=clinic":           {"doctor", "health"},
	"amenity=doctors":          {"doctor", "health"},
	"amenity=dentist":          {"dentist", "health"},
	"amenity=veterinary":       {"veterinary_care"},
	"amenity=school":           {"school"},
	"amenity=kindergarten":     {"school"},
	"amenity=college":          {"school"},
	"amenity=university":       {"university"},
	"amenity=library":          {"library"},
	"amenity=place_of_worship": {"place_of_worship"},
	"amenity=parking":          {"parking"},
	"amenity=fuel":             {"gas_station"},
	"amenity=police":           {"police"},
	"amenity=fire_station":     {"fire_station"},
	"amenity=post_office":      {"post_office"},
	"amenity=townhall":         {"city_hall", "local_government_office"},
	"amenity=courthouse":       {"courthouse"},
	"amenity=embassy":          {"embassy"},
	"amenity=cinema":           {"movie_theater"},
	"amenity=casino":           {"casino"},
	"amenity=car_rental":       {"car_rental"},
	"amenity=car_wash":         {"car_wash"},
	"amenity=taxi":             {"taxi_stand"},
	"amenity=bus_station":      {"bus_station", "transit_station"},
	"amenity=grave_yard":       {"cemetery"},
	"amenity=funeral_hall":     {"funeral_home"},
	"amenity=internet_cafe":    {"cafe"},
	"amenity=marketplace":      {"store"},
	"amenity=spa":              {"spa"},

	"shop=supermarket":       {"supermarket", "grocery_or_supermarket", "food", "store"},
	"shop=convenience":       {"convenience_store", "food", "store"},
	"shop=greengrocer":       {"grocery_or_supermarket", "food", "store"},
	"shop=bakery":            {"bakery", "food", "store"},
	"shop=butcher":           {"food", "store"},
	"shop=alcohol":           {"liquor_store", "store"},
	"shop=wine":              {"liquor_store", "store"},
	"shop=books":             {"book_store", "store"},
	"shop=bicycle":           {"bicycle_store", "store"},
	"shop=clothes":           {"clothing_store", "store"},
	"shop=boutique":          {"clothing_store", "store"},
	"shop=fashion":           {"clothing_store", "store"},
	"shop=shoes":             {"shoe_store", "store"},
	"shop=jewelry":           {"jewelry_store", "store"},
	"shop=electronics":       {"electronics_store", "store"},
	"shop=computer":          {"electronics_store", "store"},
	"shop=mobile_phone":      {"electronics_store", "store"},
	"shop=hardware":          {"hardware_store", "store"},
	"shop=doityourself":      {"hardware_store", "home_goods_store", "store"},
	"shop=furniture":         {"furniture_store", "home_goods_store", "store"},
	"shop=garden_centre":     {"home_goods_store", "store"},
	"shop=florist":           {"florist", "store"},
	"shop=department_store":  {"department_store", "store"},
	"shop=mall":              {"shopping_mall"},
	"shop=car":               {"car_dealer", "store"},
	"shop=car_repair":        {"car_repair"},
	"shop=hairdresser":       {"hair_care"},
	"shop=beauty":            {"beauty_salon"},
	"shop=massage":           {"spa"},
	"shop=pet":               {"pet_store", "store"},
	"shop=chemist":           {"drugstore", "store"},
	"shop=optician":          {"health", "store"},
	"shop=laundry":           {"laundry"},
	"shop=dry_cleaning":      {"laundry"},
	"shop=travel_agency":     {"travel_agency"},
	"shop=funeral_directors": {"funeral_home"},
	"shop=storage_rental":    {"storage"},
	"shop=locksmith":         {"locksmith"},

	"tourism=hotel":          {"lodging"},
	"tourism=motel":          {"lodging"},
	"tourism=hostel":         {"lodging"},
	"tourism=guest_house":    {"lodging"},
	"tourism=apartment":      {"lodging"},
	"tourism=chalet":         {"lodging"},
	"tourism=alpine_hut":     {"lodging"},
	"tourism=wilderness_hut": {"lodging"},
	"tourism=camp_site":      {"campground", "lodging"},
	"tourism=caravan_site":   {"rv_park", "lodging"},
	"tourism=museum":         {"museum", "tourist_attraction"},
	"tourism=gallery":        {"art_gallery"},
	"tourism=zoo":            {"zoo", "tourist_attraction"},
	"tourism=aquarium":       {"aquarium", "tourist_attraction"},
	"tourism=theme_park":     {"amusement_park", "tourist_attraction"},
	"tourism=attraction":     {"tourist_attraction"},
	"tourism=viewpoint":      {"tourist_attraction"},
	"tourism=artwork":        {"tourist_attraction"},

	"leisure=park":           {"park"},
	"leisure=garden":         {"park"},
	"leisure=playground":     {"park"},
	"leisure=nature_reserve": {"park"},
	"leisure=fitness_centre": {"gym"},
	"leisure=sports_centre":  {"gym"},
	"leisure=stadium":        {"stadium"},
	"leisure=bowling_alley":  {"bowling_alley"},
	"leisure=water_park":     {"amusement_park"},

	"office=lawyer":              {"lawyer"},
	"office=accountant":          {"accounting"},
	"office=tax_advisor":         {"accounting"},
	"office=insurance":           {"insurance_agency", "finance"},
	"office=estate_agent":        {"real_estate_agency"},
	"office=government":          {"local_government_office"},
	"office=travel_agent":        {"travel_agency"},
	"craft=electrician":          {"electrician"},
	"craft=plumber":              {"plumber"},
	"craft=painter":              {"painter"},
	"craft=roofer":               {"roofing_contractor"},
	"craft=locksmith":            {"locksmith"},
	"healthcare=physiotherapist": {"physiotherapist", "health"},

	"aeroway=aerodrome":        {"airport"},
	"railway=halt":             {"train_station", "transit_station"},
	"public_transport=station": {"transit_station"},
}

// religionTypes refine amenity=place_of_worship by its religion tag.
var religionTypes = map[string]string{
	"christian": "church",
	"muslim":    "mosque",
	"jewish":    "synagogue",
	"hindu":     "hindu_temple",
}

// stationTypes refine railway=station by its station tag.
var stationTypes = map[string][]string{
	"subway":     {"subway_station", "transit_station"},
	"light_rail": {"light_rail_station", "transit_station"},
	"":           {"train_station", "transit_station"},
}

// placeTypes returns the Google types of a feature with these tags, ending
// with "point_of_interest" and "establishment", or false when no tag makes
// it a point of interest.
func placeTypes(tags osm.Tags) ([]string, bool) {
	var types []string
	found := false
	for _, k := range poiKeys {
		v := tags.Find(k)
		if v == "" || v == "no" {
			continue
		}
		if only, ok := onlyValues[k]; ok && !slices.Contains(only, v) {
			continue
		}
		found = true
		switch kv := k + "=" + v; {
		case kv == "railway=station":
			st, ok := stationTypes[tags.Find("station")]
			if !ok {
				st = stationTypes[""]
			}
			types = append(types, st...)
		case kv == "amenity=place_of_worship":
			if t, ok := religionTypes[tags.Find("religion")]; ok {
				types = append(types, t)
			}
			types = append(types, tagTypes[kv]...)
		default:
			if t, ok := tagTypes[kv]; ok {
				types = append(types, t...)
			} else {
				types = append(types, keyTypes[k]...)
			}
		}
	}
	if !found {
		return nil, false
	}
	types = append(types, "point_of_interest", "establishment")
	return dedupe(types), true
}

// dedupe drops repeated strings, keeping the first of each.
func dedupe(s []string) []string {
	out := s[:0]
	for _, v := range s {
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

// vicinity is the address of a feature from its addr:* tags: "12 Main
// Street, Springfield", or "Main Street" alone; locality fills in the town
// when addr:city and addr:place are missing.
func vicinity(tags osm.Tags, locality string) string {
	if full := tags.Find("addr:full"); full != "" {
		return full
	}
	street := tags.Find("addr:street")
	town := tags.Find("addr:city")
	if town == "" {
		town = tags.Find("addr:place")
	}
	if street != "" {
		if n := tags.Find("addr:housenumber"); n != "" {
			street = n + " " + street
		}
	}
	if town == "" {
		town = locality
	}
	switch {
	case street == "":
		return town
	case town == "":
		return street
	}
	return street + ", " + town
}

// firstValue returns the first non-empty value among keys, up to any ';'
// that separates several values.
func firstValue(tags osm.Tags, keys ...string) string {
	for _, k := range keys {
		if v := tags.Find(k); v != "" {
			v, _, _ = strings.Cut(v, ";")
			return strings.TrimSpace(v)
		}
	}
	return ""
}
