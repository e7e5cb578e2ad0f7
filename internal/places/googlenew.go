package places

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"html"
	"net/http"
)

// GoogleNewFieldMask lists the Place fields GoogleNew asks for: exactly those
// the translation to the legacy shape reads.
//
// Places API (New) bills a Nearby Search at the highest SKU among the fields
// in the mask. rating, userRatingCount, priceLevel and currentOpeningHours
// are "Nearby Search Enterprise" fields; all the others here (id,
// displayName, location, viewport, shortFormattedAddress, types,
// businessStatus, plusCode, the icon fields and photos) are "Nearby Search
// Pro". So every request is billed as Nearby Search Enterprise, not
// Enterprise + Atmosphere. Dropping those four fields would bring it down to
// Nearby Search Pro.
const GoogleNewFieldMask = "places.id,places.displayName,places.location,places.viewport," +
	"places.shortFormattedAddress,places.types,places.rating,places.userRatingCount," +
	"places.businessStatus,places.currentOpeningHours.openNow,places.priceLevel," +
	"places.plusCode,places.iconBackgroundColor,places.iconMaskBaseUri,places.photos"

// GoogleNew asks Places API (New) searchNearby and translates its answer to
// the legacy Nearby Search shape. See GoogleNewFieldMask for what it costs.
type GoogleNew struct {
	url    string
	key    string
	client *http.Client
}

// NewGoogleNew returns a provider that sends POST requests to rawURL with
// key in the X-Goog-Api-Key header. A nil client gets a pooled client of
// its own.
func NewGoogleNew(rawURL, key string, client *http.Client) *GoogleNew {
	if client == nil {
		client = newHTTPClient()
	}
	return &GoogleNew{url: rawURL, key: key, client: client}
}

// Nearby implements Provider. HTTP errors become an *Error whose status
// follows statusForHTTP and whose message is Google's.
func (g *GoogleNew) Nearby(ctx context.Context, q Query) ([]byte, error) {
	reqBody, err := json.Marshal(newSearchRequest{
		LocationRestriction: newLocationRestriction{Circle: newCircle{
			Center: newLatLng{Latitude: q.Lat, Longitude: q.Lng},
			Radius: q.RadiusMeters,
		}},
		MaxResultCount: q.Limit,
	})
	if err != nil { // only a NaN or infinite coordinate or radius gets here
		return nil, fail(StatusInvalidRequest, "query is not a finite location and radius", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, g.url, bytes.NewReader(reqBody))
	if err != nil {
		return nil, requestFailed(ctx, err)
	}
	req.Header.Set("Content-Type", "application/json")
	if g.key != "" {
		req.Header.Set("X-Goog-Api-Key", g.key)
	}
	req.Header.Set("X-Goog-FieldMask", GoogleNewFieldMask)
	body, err := send(g.client, req)
	if err != nil {
		return nil, err
	}
	var answer newSearchResponse
	if err := json.Unmarshal(body, &answer); err != nil {
		return nil, fail(StatusUnknownError, "upstream answer does not fit Places API (New)", err)
	}
	return legacyBody(answer.Places, q.Limit)
}

// newSearchRequest is the searchNearby request body.
type newSearchRequest struct {
	LocationRestriction newLocationRestriction `json:"locationRestriction"`
	MaxResultCount      int                    `json:"maxResultCount"`
}

type newLocationRestriction struct {
	Circle newCircle `json:"circle"`
}

type newCircle struct {
	Center newLatLng `json:"center"`
	Radius float64   `json:"radius"` // metres
}

// newSearchResponse is the part of a searchNearby answer that the field
// mask asks for. An answer with no places is {}.
type newSearchResponse struct {
	Places []newPlace `json:"places"`
}

// newPlace is a Place of Places API (New), cut down to GoogleNewFieldMask.
type newPlace struct {
	ID          string `json:"id"`
	DisplayName *struct {
		Text string `json:"text"`
	} `json:"displayName"`
	Location              *newLatLng   `json:"location"`
	Viewport              *newViewport `json:"viewport"`
	ShortFormattedAddress string       `json:"shortFormattedAddress"`
	Types                 []string     `json:"types"`
	Rating                *float64     `json:"rating"`
	UserRatingCount       *int         `json:"userRatingCount"`
	BusinessStatus        string       `json:"businessStatus"`
	CurrentOpeningHours   *struct {
		OpenNow *bool `json:"openNow"`
	} `json:"currentOpeningHours"`
	PriceLevel string `json:"priceLevel"`
	PlusCode   *struct {
		GlobalCode   string `json:"globalCode"`
		CompoundCode string `json:"compoundCode"`
	} `json:"plusCode"`
	IconBackgroundColor string     `json:"iconBackgroundColor"`
	IconMaskBaseURI     string     `json:"iconMaskBaseUri"`
	Photos              []newPhoto `json:"photos"`
}

type newLatLng struct {
	Latitude  float64 `json:"latitude"`
	Longitude float64 `json:"longitude"`
}

func (l newLatLng) legacy() legacyLatLng { return legacyLatLng{Lat: l.Latitude, Lng: l.Longitude} }

type newViewport struct {
	Low  newLatLng `json:"low"`
	High newLatLng `json:"high"`
}

type newPhoto struct {
	Name               string `json:"name"`
	WidthPx            int    `json:"widthPx"`
	HeightPx           int    `json:"heightPx"`
	AuthorAttributions []struct {
		DisplayName string `json:"displayName"`
		URI         string `json:"uri"`
	} `json:"authorAttributions"`
}

// legacyAnswer is a Nearby Search (legacy) body. Its fields, like those of
// the types below, are in the alphabetical order Google writes them in.
type legacyAnswer struct {
	HTMLAttributions []string       `json:"html_attributions"`
	Results          []legacyResult `json:"results"`
	Status           string         `json:"status"`
}

// legacyResult is one legacy result. Fields whose source is absent from the
// Places API (New) answer are omitted.
type legacyResult struct {
	BusinessStatus      string              `json:"business_status,omitempty"`
	Geometry            *legacyGeometry     `json:"geometry,omitempty"`
	IconBackgroundColor string              `json:"icon_background_color,omitempty"`
	IconMaskBaseURI     string              `json:"icon_mask_base_uri,omitempty"`
	Name                string              `json:"name,omitempty"`
	OpeningHours        *legacyOpeningHours `json:"opening_hours,omitempty"`
	Photos              []legacyPhoto       `json:"photos,omitempty"`
	PlaceID             string              `json:"place_id,omitempty"`
	PlusCode            *legacyPlusCode     `json:"plus_code,omitempty"`
	PriceLevel          *int                `json:"price_level,omitempty"`
	Rating              *float64            `json:"rating,omitempty"`
	Types               []string            `json:"types,omitempty"`
	UserRatingsTotal    *int                `json:"user_ratings_total,omitempty"`
	Vicinity            string              `json:"vicinity,omitempty"`
}

type legacyGeometry struct {
	Location *legacyLatLng   `json:"location,omitempty"`
	Viewport *legacyViewport `json:"viewport,omitempty"`
}

type legacyViewport struct {
	Northeast legacyLatLng `json:"northeast"`
	Southwest legacyLatLng `json:"southwest"`
}

type legacyOpeningHours struct {
	OpenNow bool `json:"open_now"`
}

type legacyPlusCode struct {
	CompoundCode string `json:"compound_code,omitempty"`
	GlobalCode   string `json:"global_code,omitempty"`
}

type legacyLatLng struct {
	Lat float64 `json:"lat"`
	Lng float64 `json:"lng"`
}

type legacyPhoto struct {
	Height           int      `json:"height"`
	HTMLAttributions []string `json:"html_attributions"`
	PhotoReference   string   `json:"photo_reference"`
	Width            int      `json:"width"`
}

// legacyBody renders at most limit places as a legacy body, indented like
// Google's legacy output: status OK, or ZERO_RESULTS when there are none.
func legacyBody(places []newPlace, limit int) ([]byte, error) {
	answer := legacyAnswer{HTMLAttributions: []string{}, Results: []legacyResult{}, Status: StatusOK}
	for _, p := range places[:min(limit, len(places))] {
		answer.Results = append(answer.Results, p.legacy())
	}
	if len(answer.Results) == 0 {
		answer.Status = StatusZeroResults
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // keep photo attributions readable: <a href="...">
	enc.SetIndent("", "   ")
	if err := enc.Encode(answer); err != nil {
		return nil, fmt.Errorf("places: encode legacy answer: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// legacy translates p to a legacy result.
func (p *newPlace) legacy() legacyResult {
	r := legacyResult{
		BusinessStatus:      p.BusinessStatus,
		IconBackgroundColor: p.IconBackgroundColor,
		IconMaskBaseURI:     p.IconMaskBaseURI,
		PlaceID:             p.ID,
		PriceLevel:          legacyPriceLevel(p.PriceLevel),
		Rating:              p.Rating,
		Types:               p.Types,
		UserRatingsTotal:    p.UserRatingCount,
		Vicinity:            p.ShortFormattedAddress,
	}
	if p.DisplayName != nil {
		r.Name = p.DisplayName.Text
	}
	if p.Location != nil || p.Viewport != nil {
		r.Geometry = &legacyGeometry{}
	}
	if p.Location != nil {
		loc := p.Location.legacy()
		r.Geometry.Location = &loc
	}
	if p.Viewport != nil {
		r.Geometry.Viewport = &legacyViewport{Northeast: p.Viewport.High.legacy(), Southwest: p.Viewport.Low.legacy()}
	}
	if h := p.CurrentOpeningHours; h != nil && h.OpenNow != nil {
		r.OpeningHours = &legacyOpeningHours{OpenNow: *h.OpenNow}
	}
	if pc := p.PlusCode; pc != nil {
		r.PlusCode = &legacyPlusCode{CompoundCode: pc.CompoundCode, GlobalCode: pc.GlobalCode}
	}
	for _, ph := range p.Photos {
		r.Photos = append(r.Photos, ph.legacy())
	}
	return r
}

// legacy translates ph, rendering each author as the legacy HTML link.
func (ph *newPhoto) legacy() legacyPhoto {
	lp := legacyPhoto{
		Height:           ph.HeightPx,
		HTMLAttributions: []string{},
		PhotoReference:   ph.Name,
		Width:            ph.WidthPx,
	}
	for _, a := range ph.AuthorAttributions {
		name := html.EscapeString(a.DisplayName)
		if a.URI != "" {
			name = `<a href="` + html.EscapeString(a.URI) + `">` + name + `</a>`
		}
		lp.HTMLAttributions = append(lp.HTMLAttributions, name)
	}
	return lp
}

// legacyPriceLevel maps a Places API (New) price level to the legacy 0-4
// scale; nil (omitted) for PRICE_LEVEL_UNSPECIFIED or absent.
func legacyPriceLevel(level string) *int {
	var n int
	switch level {
	case "PRICE_LEVEL_FREE":
		n = 0
	case "PRICE_LEVEL_INEXPENSIVE":
		n = 1
	case "PRICE_LEVEL_MODERATE":
		n = 2
	case "PRICE_LEVEL_EXPENSIVE":
		n = 3
	case "PRICE_LEVEL_VERY_EXPENSIVE":
		n = 4
	default:
		return nil
	}
	return &n
}
